// Memory-type classification of host pointers through the CUDA runtime
// (cuda/runtime.h): heap, stack, static, pinned-looking and null pointers
// are host memory, on a machine with or without a GPU.
#include "cuda/runtime.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

namespace smp::cuda {
namespace {

int g_static[16];

TEST(MemType, HostPointersAreHost) {
  std::vector<float> heap(1000);
  int stack[4] = {0, 1, 2, 3};
  void *raw = std::malloc(1 << 20);
  EXPECT_FALSE(is_device_pointer(nullptr));
  EXPECT_FALSE(is_device_pointer(heap.data()));
  EXPECT_FALSE(is_device_pointer(stack));
  EXPECT_FALSE(is_device_pointer(g_static));
  EXPECT_FALSE(is_device_pointer(raw));
  EXPECT_FALSE(is_device_pointer(reinterpret_cast<void *>(0x10)));  // unknown address
  std::free(raw);
}

TEST(MemType, DeviceCountIsStableAndNonNegative) {
  const int n = device_count();
  EXPECT_GE(n, 0);
  EXPECT_EQ(device_count(), n);
}

}  // namespace
}  // namespace smp::cuda
