// The tensor transport (smp_send_tensor / smp_recv_tensor_into /
// smp_exchange_tensors) with CUDA tensors, all ranks on one GPU (so the
// staged backend carries them): a ring, then both neighbours at once, for
// float32 and bfloat16 tensors of a few shapes; then mixed memory, a CUDA
// tensor received into host memory (a given buffer and a new tensor) and a
// host tensor into CUDA memory. Each rank regenerates what its neighbours
// sent from the shared seed and compares byte for byte; the receive buffers
// are poisoned first.
#include <cuda_runtime_api.h>
#include <dlpack/dlpack.h>
#include <mpi.h>
#include <smp/smp.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gpu_util.h"

using gpu_test::DeviceBuffer;

namespace {

int g_failures = 0, g_rank = 0;

std::vector<char> data_of(uint64_t seed, int rank, int tag, size_t bytes) {
  std::mt19937_64 rng(seed * 1000003u + static_cast<uint64_t>(rank) * 131u + static_cast<uint64_t>(tag));
  std::vector<char> b(bytes);
  for (auto &c : b) c = static_cast<char>(rng() & 0x3f);  // finite for f32 / bf16 alike
  return b;
}

// A CUDA DLManagedTensor over `buf` (not owned).
struct CudaTensor {
  std::vector<int64_t> shape;
  DLManagedTensor m{};
  CudaTensor(void *buf, DLDataType t, std::vector<int64_t> s, int device, DLDeviceType type = kDLCUDA)
      : shape(std::move(s)) {
    m.dl_tensor.data = buf;
    m.dl_tensor.device = DLDevice{type, type == kDLCUDA ? device : 0};
    m.dl_tensor.ndim = static_cast<int32_t>(shape.size());
    m.dl_tensor.dtype = t;
    m.dl_tensor.shape = shape.data();
  }
};

void check(bool ok, const std::string &what) {
  if (!ok) {
    ++g_failures;
    std::fprintf(stderr, "rank %d: FAIL %s\n", g_rank, what.c_str());
  }
}
void ok(smp_status_t s, const std::string &what) {
  check(s == SMP_SUCCESS, what + ": " + smp_status_string(s) + ": " + smp_last_error());
}

}  // namespace

int main() {
  gpu_test::skip_without_gpu("gpu_transport_test");
  int ndev = 0;
  GPU_CHECK(cudaGetDeviceCount(&ndev));
  if (smp_init(nullptr) != SMP_SUCCESS) {
    std::fprintf(stderr, "smp_init: %s\n", smp_last_error());
    return 1;
  }
  int size = 1;
  smp_rank(SMP_WORLD, &g_rank);
  smp_size(SMP_WORLD, &size);
  const int device = g_rank % ndev;
  GPU_CHECK(cudaSetDevice(device));
  uint64_t seed = gpu_test::fresh_seed();
  MPI_Bcast(&seed, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  const int next = (g_rank + 1) % size, prev = (g_rank + size - 1) % size;

  const DLDataType f32{kDLFloat, 32, 1}, bf16{kDLBfloat, 16, 1};
  int tag = 0;
  for (const DLDataType t : {f32, bf16}) {
    for (const std::vector<int64_t> &shape :
         {std::vector<int64_t>{1}, std::vector<int64_t>{33, 17}, std::vector<int64_t>{4, 256, 1024}}) {
      size_t n = 1;
      for (int64_t d : shape) n *= static_cast<size_t>(d);
      const size_t bytes = n * t.bits / 8;
      const std::string what = std::string(t.code == kDLFloat ? "f32" : "bf16") + " " + std::to_string(n) + " elements";
      ++tag;
      // Ring: send to next, receive from prev (paired by the exchange, so
      // no ordering deadlock whatever the size).
      DeviceBuffer mine(bytes), from_prev(bytes), from_next(bytes);
      mine.upload(data_of(seed, g_rank, tag, bytes).data());
      from_prev.poison();
      from_next.poison();
      CudaTensor send_t(mine.get(), t, shape, device), prev_t(from_prev.get(), t, shape, device),
          next_t(from_next.get(), t, shape, device);
      if (size > 1) {
        smp_tensor_transfer_t sends[2] = {{next, tag, &send_t.m}, {prev, tag, &send_t.m}};
        smp_tensor_transfer_t recvs[2] = {{prev, tag, &prev_t.m}, {next, tag, &next_t.m}};
        ok(smp_exchange_tensors(sends, 2, recvs, 2, SMP_WORLD), "exchange " + what);
        std::vector<char> got(bytes);
        from_prev.download(got.data());
        check(got == data_of(seed, prev, tag, bytes), "exchange from prev " + what);
        from_next.download(got.data());
        check(got == data_of(seed, next, tag, bytes), "exchange from next " + what);
        // Blocking pair, ordered so it cannot deadlock: even ranks send first.
        from_prev.poison();
        if (g_rank % 2 == 0) {
          ok(smp_send_tensor(&send_t.m, next, SMP_WORLD, tag + 1000), "send_tensor " + what);
          ok(smp_recv_tensor_into(&prev_t.m, prev, SMP_WORLD, tag + 1000), "recv_tensor_into " + what);
        } else {
          ok(smp_recv_tensor_into(&prev_t.m, prev, SMP_WORLD, tag + 1000), "recv_tensor_into " + what);
          ok(smp_send_tensor(&send_t.m, next, SMP_WORLD, tag + 1000), "send_tensor " + what);
        }
        from_prev.download(got.data());
        check(got == data_of(seed, prev, tag, bytes), "send/recv_tensor_into " + what);

        // Mixed memory in one exchange: CUDA -> host buffer, CUDA -> new
        // (host) tensor, host -> CUDA buffer.
        std::vector<char> host_in(bytes, static_cast<char>(0xff));
        const std::vector<char> host_out = data_of(seed, g_rank, tag + 2000, bytes);
        CudaTensor host_in_t(host_in.data(), t, shape, device, kDLCPU),
            host_out_t(const_cast<char *>(host_out.data()), t, shape, device, kDLCPU);
        from_prev.poison();
        smp_tensor_transfer_t msends[3] = {{next, tag + 3000, &send_t.m}, {next, tag + 4000, &send_t.m},
                                           {next, tag + 2000, &host_out_t.m}};
        smp_tensor_transfer_t mrecvs[3] = {{prev, tag + 3000, &host_in_t.m}, {prev, tag + 4000, nullptr},
                                           {prev, tag + 2000, &prev_t.m}};
        ok(smp_exchange_tensors(msends, 3, mrecvs, 3, SMP_WORLD), "mixed-memory exchange " + what);
        check(host_in == data_of(seed, prev, tag, bytes), "CUDA -> host buffer " + what);
        DLManagedTensor *fresh = mrecvs[1].tensor;
        check(fresh != nullptr && fresh->dl_tensor.device.device_type == kDLCPU &&
                  std::memcmp(fresh->dl_tensor.data, data_of(seed, prev, tag, bytes).data(), bytes) == 0,
              "CUDA -> new host tensor " + what);
        if (fresh && fresh->deleter) fresh->deleter(fresh);
        from_prev.download(got.data());
        check(got == data_of(seed, prev, tag + 2000, bytes), "host -> CUDA buffer " + what);
      }
    }
  }
  int failures = g_failures;
  MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (g_rank == 0) std::printf("gpu_transport_test: %d ranks, %d failures (seed %llu)\n", size, failures,
                               static_cast<unsigned long long>(seed));
  smp_finalize();
  return failures == 0 && size > 1 ? 0 : 1;
}
