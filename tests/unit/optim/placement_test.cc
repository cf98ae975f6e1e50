// The optimizer's placement rule (optim/placement.h) with a fake pointer
// table standing in for cudaPointerGetAttributes: all host, all on one
// device, and every way of mixing (param vs grad, host vs device, two
// devices) rejected with a message naming both pointers; empty tensors
// ignored.
#include "optim/placement.h"

#include <gtest/gtest.h>

#include <map>

#include "common/error.h"

namespace smp::optim {
namespace {

// Pointers are fake addresses; the table says which device holds each.
struct Fake {
  std::map<const void *, int> device;
  char mem[64] = {};
  void *ptr(int i, int dev) {
    void *p = mem + i;
    device[p] = dev;
    return p;
  }
  DeviceOf fn() const {
    return [this](const void *p) {
      auto it = device.find(p);
      return it == device.end() ? -1 : it->second;
    };
  }
};

TensorBinding binding(const std::string &name, size_t count, void *param, const void *grad) {
  return {{name, count, DType::F32}, param, grad, true};
}

std::string error_of(const std::vector<TensorBinding> &t, const DeviceOf &device_of) {
  try {
    place_tensors(t, device_of);
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), Status::InvalidArgument);
    return e.what();
  }
  return "";
}

TEST(Placement, AllHostIsHost) {
  Fake f;
  const Placement p = place_tensors({binding("a", 3, f.ptr(0, -1), f.ptr(1, -1)),
                                     binding("b", 5, f.ptr(2, -1), f.ptr(3, -1))},
                                    f.fn());
  EXPECT_EQ(p.memory, Memory::Host);
  EXPECT_EQ(p.device, -1);
}

TEST(Placement, AllOnOneDeviceIsCuda) {
  Fake f;
  const Placement p = place_tensors({binding("a", 3, f.ptr(0, 2), f.ptr(1, 2)),
                                     binding("b", 5, f.ptr(2, 2), f.ptr(3, 2))},
                                    f.fn());
  EXPECT_EQ(p.memory, Memory::Cuda);
  EXPECT_EQ(p.device, 2);
}

TEST(Placement, NoTensorsOrOnlyEmptyOnesAreHost) {
  Fake f;
  EXPECT_EQ(place_tensors({}, f.fn()).memory, Memory::Host);
  // Empty tensors own no memory: their pointers (even NULL) are not asked.
  int asked = 0;
  const Placement p = place_tensors({binding("e", 0, nullptr, nullptr)}, [&](const void *) {
    ++asked;
    return 0;
  });
  EXPECT_EQ(p.memory, Memory::Host);
  EXPECT_EQ(asked, 0);
}

TEST(Placement, EmptyTensorsDoNotDecide) {
  Fake f;
  const Placement p = place_tensors({binding("e", 0, f.ptr(0, -1), f.ptr(1, -1)),
                                     binding("a", 4, f.ptr(2, 0), f.ptr(3, 0))},
                                    f.fn());
  EXPECT_EQ(p.memory, Memory::Cuda);
  EXPECT_EQ(p.device, 0);
}

TEST(Placement, DeviceGradOfHostParamIsRejected) {
  Fake f;
  const std::string e = error_of({binding("a", 3, f.ptr(0, -1), f.ptr(1, -1)),
                                  binding("b", 5, f.ptr(2, -1), f.ptr(3, 0))},
                                 f.fn());
  EXPECT_NE(e.find("tensor #1 ('b')'s gradient is in CUDA device 0"), std::string::npos) << e;
  EXPECT_NE(e.find("tensor #0 ('a')'s parameter is in host memory"), std::string::npos) << e;
}

TEST(Placement, HostTensorAfterDeviceOnesIsRejected) {
  Fake f;
  const std::string e = error_of({binding("a", 3, f.ptr(0, 1), f.ptr(1, 1)),
                                  binding("b", 5, f.ptr(2, -1), f.ptr(3, -1))},
                                 f.fn());
  EXPECT_NE(e.find("tensor #1 ('b')'s parameter is in host memory"), std::string::npos) << e;
  EXPECT_NE(e.find("CUDA device 1"), std::string::npos) << e;
}

TEST(Placement, TwoDevicesAreRejected) {
  Fake f;
  const std::string e = error_of({binding("a", 3, f.ptr(0, 0), f.ptr(1, 0)),
                                  binding("b", 5, f.ptr(2, 1), f.ptr(3, 1))},
                                 f.fn());
  EXPECT_NE(e.find("tensor #1 ('b')'s parameter is in CUDA device 1"), std::string::npos) << e;
  EXPECT_NE(e.find("all on one CUDA device"), std::string::npos) << e;
}

TEST(Placement, HostParamWithDeviceGradInTheSameTensor) {
  Fake f;
  const std::string e = error_of({binding("a", 3, f.ptr(0, 0), f.ptr(1, -1))}, f.fn());
  EXPECT_NE(e.find("tensor #0 ('a')'s gradient is in host memory"), std::string::npos) << e;
}

}  // namespace
}  // namespace smp::optim
