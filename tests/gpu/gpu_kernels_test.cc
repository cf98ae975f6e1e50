// The CUDA optimizer and reduction kernels against their CPU twins
// (optim/kernels.h, comm/reduce.h) on fresh random data every run, device
// outputs poisoned before each run: float32 state within 1e-6 relative
// (both follow the same operations in the same order), half-precision
// outputs within one unit in the last place. Sizes cover the vector body,
// its scalar tail and misaligned pointers (the scalar path). reduce_many
// (the IPC and staged backends' n-input reduction) must equal the host's
// reduce_first / reduce_accumulate / reduce_finish byte for byte in every
// dtype and op: same order, same accumulator, no reassociation; also as
// the staged reduce-scatter calls it, reading pinned host memory and
// writing over its first input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "comm/reduce.h"
#include "common/error.h"
#include "cuda/reduce_many.h"
#include "gpu_util.h"
#include "optim/cuda/norm_kernels.h"
#include "optim/cuda/optim_kernels.h"
#include "optim/kernels.h"

namespace smp {
namespace {

using gpu_test::DeviceBuffer;

uint64_t g_seed = 0;

// Random values of dtype t as raw element bits, and a float view of them.
std::vector<uint16_t> halves(std::mt19937_64 &rng, size_t n, DType t, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<uint16_t> h(n);
  for (auto &x : h) x = t == DType::BF16 ? float_to_bf16(d(rng)) : float_to_f16(d(rng));
  return h;
}
std::vector<float> floats(std::mt19937_64 &rng, size_t n, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> f(n);
  for (auto &x : f) x = d(rng);
  return f;
}

// Raw bytes of n elements of dtype t (F32, BF16, F16), random.
std::vector<char> random_elems(std::mt19937_64 &rng, size_t n, DType t, float scale) {
  std::vector<char> out(n * dtype_size(t));
  if (t == DType::F32) {
    const auto f = floats(rng, n, scale);
    std::memcpy(out.data(), f.data(), out.size());
  } else {
    const auto h = halves(rng, n, t, scale);
    std::memcpy(out.data(), h.data(), out.size());
  }
  return out;
}

float elem_float(const std::vector<char> &b, DType t, size_t i) {
  if (t == DType::F32) {
    float f;
    std::memcpy(&f, b.data() + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, b.data() + 2 * i, 2);
  return t == DType::BF16 ? bf16_to_float(h) : f16_to_float(h);
}

::testing::AssertionResult close_f32(const std::vector<float> &gpu, const std::vector<float> &cpu,
                                     const char *what) {
  for (size_t i = 0; i < cpu.size(); ++i) {
    const float a = gpu[i], b = cpu[i];
    if (!(std::fabs(a - b) <= 1e-6f * std::max(std::fabs(a), std::fabs(b))) && !(a == b))
      return ::testing::AssertionFailure() << what << "[" << i << "]: gpu " << a << " cpu " << b
                                           << " (seed " << g_seed << ")";
  }
  return ::testing::AssertionSuccess();
}

// Half outputs: within one unit in the last place of the dtype.
::testing::AssertionResult close_elems(const std::vector<char> &gpu, const std::vector<char> &cpu, DType t,
                                       size_t n, const char *what) {
  const float ulp = t == DType::F32 ? 1.2e-7f : (t == DType::BF16 ? 7.9e-3f : 9.8e-4f);
  for (size_t i = 0; i < n; ++i) {
    const float a = elem_float(gpu, t, i), b = elem_float(cpu, t, i);
    if (!(std::fabs(a - b) <= ulp * std::max(std::fabs(a), std::fabs(b)) * 1.01f) && !(a == b))
      return ::testing::AssertionFailure() << what << "[" << i << "]: gpu " << a << " cpu " << b << " ("
                                           << dtype_name(t) << ", seed " << g_seed << ")";
  }
  return ::testing::AssertionSuccess();
}

struct Case {
  DType t;
  size_t n;
  size_t offset;  // elements: 1 makes every pointer misaligned for vector loads
  bool out;
};

std::vector<Case> cases() {
  std::vector<Case> c;
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (size_t n : {size_t{1}, size_t{3}, size_t{4099}, (size_t{1} << 20) + 5})
      for (size_t off : {size_t{0}, size_t{1}})
        for (bool out : {true, false}) c.push_back({t, n, off, out});
  return c;
}

// A device copy of host data at an element offset inside a larger buffer.
struct Placed {
  DeviceBuffer buf;
  size_t off_bytes;
  Placed(size_t bytes, size_t off_bytes) : buf(bytes + off_bytes), off_bytes(off_bytes) {}
  char *ptr() const { return buf.as<char>() + off_bytes; }
  void put(const void *host, size_t bytes) { GPU_CHECK(cudaMemcpy(ptr(), host, bytes, cudaMemcpyHostToDevice)); }
  void get(void *host, size_t bytes) const { GPU_CHECK(cudaMemcpy(host, ptr(), bytes, cudaMemcpyDeviceToHost)); }
};

TEST(CudaKernels, AdamWMatchesTheCpuKernel) {
  std::mt19937_64 rng(g_seed);
  for (const Case &c : cases()) {
    SCOPED_TRACE(std::string(dtype_name(c.t)) + " n=" + std::to_string(c.n) + " offset=" +
                 std::to_string(c.offset) + (c.out ? " with" : " without") + " model copy");
    const size_t n = c.n, es = dtype_size(c.t);
    std::vector<float> p = floats(rng, n, 1.0f), m(n, 0.0f), v(n, 0.0f);
    Placed dp(n * 4, c.offset * 4), dm(n * 4, c.offset * 4), dv(n * 4, c.offset * 4),
        dg(n * es, c.offset * es), dout(n * es, c.offset * es);
    dp.put(p.data(), n * 4);
    dm.put(m.data(), n * 4);
    dv.put(v.data(), n * 4);
    optim::AdamWHyper h;
    h.lr = 2e-3;
    h.weight_decay = 0.05;
    for (int step = 1; step <= 3; ++step) {
      h.step = step;
      const float mult = 0.7f;  // 1/loss_scale x clipping coefficient
      const auto g = random_elems(rng, n, c.t, 0.05f);
      dg.put(g.data(), n * es);
      dout.buf.poison();
      std::vector<char> out_cpu(n * es), out_gpu(n * es);
      optim::adamw_update(p.data(), m.data(), v.data(), g.data(), c.out ? out_cpu.data() : nullptr, c.t, n,
                          mult, h);
      cuda::adamw_update(reinterpret_cast<float *>(dp.ptr()), reinterpret_cast<float *>(dm.ptr()),
                         reinterpret_cast<float *>(dv.ptr()), dg.ptr(), c.out ? dout.ptr() : nullptr, c.t, n,
                         cuda::adamw_coef(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.step, mult), nullptr);
      GPU_CHECK(cudaDeviceSynchronize());
      std::vector<float> gp(n), gm(n), gv(n);
      dp.get(gp.data(), n * 4);
      dm.get(gm.data(), n * 4);
      dv.get(gv.data(), n * 4);
      ASSERT_TRUE(close_f32(gp, p, "master"));
      ASSERT_TRUE(close_f32(gm, m, "exp_avg"));
      ASSERT_TRUE(close_f32(gv, v, "exp_avg_sq"));
      if (c.out) {
        dout.get(out_gpu.data(), n * es);
        ASSERT_TRUE(close_elems(out_gpu, out_cpu, c.t, n, "param_out"));
      }
      // Keep the two paths on identical state, so each step compares one step.
      dp.put(p.data(), n * 4);
      dm.put(m.data(), n * 4);
      dv.put(v.data(), n * 4);
    }
  }
}

TEST(CudaKernels, SgdMatchesTheCpuKernelInEveryMode) {
  std::mt19937_64 rng(g_seed + 1);
  struct Mode {
    double momentum, dampening;
    bool nesterov;
  };
  for (const Mode md : {Mode{0.0, 0.0, false}, Mode{0.9, 0.0, false}, Mode{0.9, 0.1, false},
                        Mode{0.9, 0.0, true}}) {
    for (const Case &c : cases()) {
      SCOPED_TRACE(std::string(dtype_name(c.t)) + " n=" + std::to_string(c.n) + " momentum=" +
                   std::to_string(md.momentum) + (md.nesterov ? " nesterov" : ""));
      const size_t n = c.n, es = dtype_size(c.t);
      std::vector<float> p = floats(rng, n, 1.0f), b(n, 0.0f);
      Placed dp(n * 4, c.offset * 4), db(n * 4, c.offset * 4), dg(n * es, c.offset * es),
          dout(n * es, c.offset * es);
      dp.put(p.data(), n * 4);
      db.buf.poison();  // step 1 must write the buffer, not read it
      optim::SgdHyper h;
      h.lr = 0.05;
      h.momentum = md.momentum;
      h.dampening = md.dampening;
      h.nesterov = md.nesterov;
      h.weight_decay = 1e-3;
      for (int step = 1; step <= 2; ++step) {
        h.step = step;
        const auto g = random_elems(rng, n, c.t, 0.1f);
        dg.put(g.data(), n * es);
        dout.buf.poison();
        std::vector<char> out_cpu(n * es), out_gpu(n * es);
        float *bufp = md.momentum != 0.0 ? b.data() : nullptr;
        optim::sgd_update(p.data(), bufp, g.data(), c.out ? out_cpu.data() : nullptr, c.t, n, 0.7f, h);
        cuda::sgd_update(reinterpret_cast<float *>(dp.ptr()),
                         md.momentum != 0.0 ? reinterpret_cast<float *>(db.ptr()) : nullptr, dg.ptr(),
                         c.out ? dout.ptr() : nullptr, c.t, n,
                         cuda::sgd_coef(h.lr, h.momentum, h.dampening, h.weight_decay, h.nesterov, h.step, 0.7f),
                         nullptr);
        GPU_CHECK(cudaDeviceSynchronize());
        std::vector<float> gp(n), gb(n);
        dp.get(gp.data(), n * 4);
        ASSERT_TRUE(close_f32(gp, p, "master"));
        if (md.momentum != 0.0) {
          db.get(gb.data(), n * 4);
          ASSERT_TRUE(close_f32(gb, b, "momentum_buf"));
        }
        if (c.out) {
          dout.get(out_gpu.data(), n * es);
          ASSERT_TRUE(close_elems(out_gpu, out_cpu, c.t, n, "param_out"));
        }
      }
    }
  }
}

TEST(CudaKernels, SumSquaresMatchesTheCpuKernel) {
  std::mt19937_64 rng(g_seed + 3);
  DeviceBuffer out(8), scratch(cuda::kSumSquaresBlocks * 8);
  for (DType t : {DType::F32, DType::BF16, DType::F16}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{1000}, (size_t{1} << 22) + 1}) {
      SCOPED_TRACE(std::string(dtype_name(t)) + " n=" + std::to_string(n));
      auto g = random_elems(rng, n, t, 0.3f);
      DeviceBuffer dg(g.size());
      dg.upload(g.data());
      out.poison();
      cuda::sum_squares(dg.get(), t, n, out.as<double>(), scratch.as<double>(), nullptr);
      double got = 0;
      out.download(&got);
      const double want = optim::sum_squares(g.data(), t, n);
      // Both accumulate in double, in different orders.
      EXPECT_NEAR(got, want, 1e-12 * want + 1e-300) << "seed " << g_seed;
      if (n > 0) {  // one non-finite gradient makes the norm non-finite
        const uint16_t inf16 = t == DType::BF16 ? 0x7f80 : 0x7c00;
        const float inff = std::numeric_limits<float>::infinity();
        GPU_CHECK(cudaMemcpy(dg.as<char>() + (n / 2) * dtype_size(t), t == DType::F32 ? static_cast<const void *>(&inff) : &inf16,
                             dtype_size(t), cudaMemcpyHostToDevice));
        cuda::sum_squares(dg.get(), t, n, out.as<double>(), scratch.as<double>(), nullptr);
        out.download(&got);
        EXPECT_FALSE(std::isfinite(got));
      }
    }
  }
}

// --- reduce_many: n inputs at once, against the host's reduction chain ---

constexpr DType kAllDTypes[] = {DType::F32, DType::F64, DType::F16, DType::BF16,
                                DType::I8,  DType::U8,  DType::I32, DType::I64};

// Raw bytes of n random elements of any dtype: floats normal with `scale`,
// integers uniform over every bit pattern (so SUM and PROD wrap, and AVG
// divides negative sums).
std::vector<char> random_any(std::mt19937_64 &rng, size_t n, DType t, float scale) {
  if (t == DType::F32 || t == DType::F16 || t == DType::BF16) return random_elems(rng, n, t, scale);
  std::vector<char> out(n * dtype_size(t));
  if (t == DType::F64) {
    std::normal_distribution<double> d(0.0, scale);
    for (size_t i = 0; i < n; ++i) {
      const double x = d(rng);
      std::memcpy(out.data() + 8 * i, &x, 8);
    }
  } else {
    for (auto &c : out) c = static_cast<char>(rng());
  }
  return out;
}

// The host reference: reduce_first(in0, in1), reduce_accumulate(in2..),
// reduce_finish, exactly what comm/ reduces with on the CPU.
std::vector<char> host_reduce(const std::vector<std::vector<char>> &ins, size_t count, DType t,
                              comm::ReduceOp op, int group) {
  std::vector<char> acc(count * comm::accumulator_size(t) + 1), out(count * dtype_size(t) + 1);
  comm::reduce_first(acc.data(), ins[0].data(), ins[1].data(), count, t, op);
  for (size_t k = 2; k < ins.size(); ++k) comm::reduce_accumulate(acc.data(), ins[k].data(), count, t, op);
  comm::reduce_finish(out.data(), acc.data(), count, t, op, group);
  out.resize(count * dtype_size(t));
  return out;
}

// Runs reduce_many on device copies of `ins` into a poisoned output and
// returns the output's bytes. Aligned: every pointer at the start of its
// allocation (the 16-byte vector path); otherwise odd inputs one element
// off (the element path: nothing may assume more than element alignment).
std::vector<char> device_reduce(const std::vector<std::vector<char>> &ins, size_t count, DType t, int op,
                                int group, bool aligned) {
  const size_t es = dtype_size(t), bytes = count * es;
  std::vector<std::unique_ptr<Placed>> dev;
  std::vector<const void *> ptrs;
  for (size_t k = 0; k < ins.size(); ++k) {
    dev.push_back(std::make_unique<Placed>(bytes, aligned ? 0 : (k % 2) * es));
    dev.back()->put(ins[k].data(), bytes);
    ptrs.push_back(dev.back()->ptr());
  }
  DeviceBuffer dout(bytes);
  dout.poison();
  cuda::reduce_many(dout.get(), ptrs.data(), static_cast<int>(ptrs.size()), count, t, op, group, nullptr);
  GPU_CHECK(cudaDeviceSynchronize());
  std::vector<char> out(bytes);
  dout.download(out.data());
  return out;
}

bool is_nan_elem(const char *p, DType t) {
  switch (t) {
    case DType::F32: { uint32_t u; std::memcpy(&u, p, 4); return (u & 0x7fffffffu) > 0x7f800000u; }
    case DType::F64: { uint64_t u; std::memcpy(&u, p, 8); return (u & ~(uint64_t{1} << 63)) > 0x7ff0000000000000ull; }
    case DType::F16: { uint16_t u; std::memcpy(&u, p, 2); return (u & 0x7fffu) > 0x7c00u; }
    case DType::BF16: { uint16_t u; std::memcpy(&u, p, 2); return (u & 0x7fffu) > 0x7f80u; }
    default: return false;
  }
}

// Byte-exact, except that with nan_any a NaN matches any NaN: GPU arithmetic
// returns the canonical NaN where x86 keeps an input's payload, and
// __float2half_rn's NaN differs from common/dtype.h's. Which elements are
// NaN must still agree (MAX / MIN keep the first operand on a NaN).
::testing::AssertionResult same_elems(const std::vector<char> &gpu, const std::vector<char> &cpu, DType t,
                                      bool nan_any) {
  const size_t es = dtype_size(t), n = cpu.size() / es;
  for (size_t i = 0; i < n; ++i) {
    const char *a = gpu.data() + i * es, *b = cpu.data() + i * es;
    if (std::memcmp(a, b, es) == 0) continue;
    if (nan_any && is_nan_elem(a, t) && is_nan_elem(b, t)) continue;
    auto hex = [es](const char *p) {
      std::string s = "0x";
      char buf[3];
      for (size_t j = es; j-- > 0;) {  // little endian: most significant byte last
        std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned char>(p[j]));
        s += buf;
      }
      return s;
    };
    return ::testing::AssertionFailure() << "element " << i << " of " << n << ": gpu " << hex(a) << " cpu "
                                         << hex(b) << " (" << dtype_name(t) << ", seed " << g_seed << ")";
  }
  return ::testing::AssertionSuccess();
}

TEST(CudaKernels, ReduceManyMatchesTheHostReductionBitForBit) {
  std::mt19937_64 rng(g_seed + 4);
  for (DType t : kAllDTypes) {
    for (int op = 0; op < comm::kNumReduceOps; ++op) {
      const auto rop = static_cast<comm::ReduceOp>(op);
      for (int n : {2, 3, 5, cuda::kReduceManyMaxInputs}) {
        // 1: the tail alone; 1000: whole vectors for every dtype;
        // 70001: many grid-stride steps and a tail (not with 64 inputs).
        for (size_t count : {size_t{1}, size_t{1000}, size_t{70001}}) {
          if (n == cuda::kReduceManyMaxInputs && count != 1000) continue;
          for (bool aligned : {true, false}) {
            // AVG divides by the group, not by n: a kernel using n fails.
            const int group = n + 4;
            SCOPED_TRACE(std::string(dtype_name(t)) + " " + comm::reduce_op_name(rop) + " n=" +
                         std::to_string(n) + " count=" + std::to_string(count) +
                         (aligned ? " aligned" : " misaligned"));
            const float scale = op == 4 ? 1.0f : 10.0f;  // PROD of N(0, 1) stays finite in F16
            std::vector<std::vector<char>> ins;
            for (int k = 0; k < n; ++k) ins.push_back(random_any(rng, count, t, scale));
            const auto want = host_reduce(ins, count, t, rop, group);
            const auto got = device_reduce(ins, count, t, op, group, aligned);
            ASSERT_TRUE(same_elems(got, want, t, /*nan_any=*/false));
          }
        }
      }
    }
  }
}

// As the staged reduce-scatter calls it: the first input (this rank's own
// piece) on the device and overwritten by the result (in place), the
// others in pinned host memory that the kernel reads directly.
TEST(CudaKernels, ReduceManyReadsPinnedInputsAndWritesOverItsFirstInput) {
  std::mt19937_64 rng(g_seed + 6);
  for (DType t : kAllDTypes) {
    for (int op = 0; op < comm::kNumReduceOps; ++op) {
      const auto rop = static_cast<comm::ReduceOp>(op);
      for (int n : {2, 3}) {
        for (size_t count : {size_t{1000}, size_t{70001}}) {
          for (size_t off : {size_t{0}, size_t{1}}) {  // elements: 1 takes the element path
            SCOPED_TRACE(std::string(dtype_name(t)) + " " + comm::reduce_op_name(rop) + " n=" +
                         std::to_string(n) + " count=" + std::to_string(count) +
                         " offset=" + std::to_string(off));
            const size_t es = dtype_size(t), bytes = count * es;
            const float scale = op == 4 ? 1.0f : 10.0f;
            std::vector<std::vector<char>> ins;
            for (int k = 0; k < n; ++k) ins.push_back(random_any(rng, count, t, scale));
            const auto want = host_reduce(ins, count, t, rop, n);
            Placed own(bytes, off * es);
            own.put(ins[0].data(), bytes);
            char *pinned = nullptr;
            GPU_CHECK(cudaMallocHost(reinterpret_cast<void **>(&pinned), (n - 1) * (bytes + es)));
            std::vector<const void *> ptrs{own.ptr()};
            for (int k = 1; k < n; ++k) {
              char *p = pinned + (k - 1) * (bytes + es) + off * es;
              std::memcpy(p, ins[k].data(), bytes);
              ptrs.push_back(p);
            }
            cuda::reduce_many(own.ptr(), ptrs.data(), n, count, t, op, n, nullptr);
            GPU_CHECK(cudaDeviceSynchronize());
            GPU_CHECK(cudaFreeHost(pinned));
            std::vector<char> got(bytes);
            own.get(got.data(), bytes);
            ASSERT_TRUE(same_elems(got, want, t, /*nan_any=*/false));
          }
        }
      }
    }
  }
}

// NaN, infinities, signed zeros, subnormals and the extremes in every
// position: which operand MAX / MIN keep, inf - inf, 0 * inf, and (halves)
// overflow to inf when the float32 accumulator is rounded.
TEST(CudaKernels, ReduceManyMatchesTheHostOnSpecialValues) {
  std::mt19937_64 rng(g_seed + 5);
  const double specials[] = {std::numeric_limits<double>::quiet_NaN(),
                             -std::numeric_limits<double>::quiet_NaN(),
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(),
                             0.0, -0.0, 1.0, -1.0, 0.5, 3.0,
                             65504.0, -65504.0,  // the largest float16
                             3.0e38, -3.0e38,    // near the largest float32 / bfloat16
                             1.0e-40, -1.0e-45,  // float32 subnormals
                             6.0e-8, 1.0e-310};  // a float16 subnormal, a float64 one
  const size_t kSpecials = sizeof specials / sizeof specials[0];
  const size_t count = 4096;
  for (DType t : {DType::F32, DType::F64, DType::F16, DType::BF16}) {
    for (int op = 0; op < comm::kNumReduceOps; ++op) {
      const auto rop = static_cast<comm::ReduceOp>(op);
      for (int n : {2, 3}) {
        const bool aligned = n == 2;
        SCOPED_TRACE(std::string(dtype_name(t)) + " " + comm::reduce_op_name(rop) + " n=" + std::to_string(n));
        std::vector<std::vector<char>> ins;
        for (int k = 0; k < n; ++k) {
          std::vector<char> in(count * dtype_size(t));
          for (size_t i = 0; i < count; ++i) {
            const double v = specials[rng() % kSpecials];
            char *p = in.data() + i * dtype_size(t);
            if (t == DType::F64) {
              std::memcpy(p, &v, 8);
            } else if (t == DType::F32) {
              const float f = static_cast<float>(v);
              std::memcpy(p, &f, 4);
            } else {
              const float f = static_cast<float>(v);
              const uint16_t h = t == DType::BF16 ? float_to_bf16(f) : float_to_f16(f);
              std::memcpy(p, &h, 2);
            }
          }
          ins.push_back(std::move(in));
        }
        const auto want = host_reduce(ins, count, t, rop, n);
        const auto got = device_reduce(ins, count, t, op, n, aligned);
        ASSERT_TRUE(same_elems(got, want, t, /*nan_any=*/true));
      }
    }
  }
}

TEST(CudaKernels, ReduceManyRejectsBadArgumentsAndLaunchesNothingForZeroElements) {
  DeviceBuffer a(64), b(64), out(64);
  a.poison();
  b.poison();
  std::vector<const void *> ins(cuda::kReduceManyMaxInputs + 1, a.get());
  ins[1] = b.get();
  auto status_of = [&](int n, DType t, int op, int group) {
    try {
      cuda::reduce_many(out.get(), ins.data(), n, 16, t, op, group, nullptr);
    } catch (const Error &e) {
      return e.status();
    }
    return Status::Success;
  };
  EXPECT_EQ(status_of(1, DType::F32, 0, 2), Status::InvalidArgument);
  EXPECT_EQ(status_of(0, DType::F32, 0, 2), Status::InvalidArgument);
  EXPECT_EQ(status_of(cuda::kReduceManyMaxInputs + 1, DType::F32, 0, 2), Status::InvalidArgument);
  EXPECT_EQ(status_of(2, DType::F32, 5, 2), Status::InvalidArgument);
  EXPECT_EQ(status_of(2, DType::F32, -1, 2), Status::InvalidArgument);
  EXPECT_EQ(status_of(2, static_cast<DType>(8), 0, 2), Status::InvalidArgument);
  EXPECT_EQ(status_of(2, DType::F32, 1, 0), Status::InvalidArgument);  // AVG over nobody
  EXPECT_EQ(status_of(cuda::kReduceManyMaxInputs, DType::I32, 0, 2), Status::Success);
  GPU_CHECK(cudaDeviceSynchronize());
  std::vector<int32_t> sums(16);
  out.download(sums.data());
  for (int32_t v : sums) ASSERT_EQ(v, -cuda::kReduceManyMaxInputs);  // 64 poisoned inputs: -1 each
  // count 0: the output is not written.
  out.poison();
  cuda::reduce_many(out.get(), ins.data(), 2, 0, DType::F32, 0, 2, nullptr);
  GPU_CHECK(cudaDeviceSynchronize());
  std::vector<unsigned char> bytes(64);
  out.download(bytes.data());
  for (unsigned char c : bytes) ASSERT_EQ(c, 0xff);
}

}  // namespace
}  // namespace smp

int main(int argc, char **argv) {
  gpu_test::skip_without_gpu("gpu_kernels_test");
  smp::g_seed = gpu_test::fresh_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(smp::g_seed));
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
