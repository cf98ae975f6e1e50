// Every collective and point-to-point call of the C API on CUDA buffers,
// every dtype, compared byte for byte with the same call on host buffers
// (the MPI path) on the same fresh random data; outputs poisoned first.
// Run with 1 rank (NCCL, one rank per communicator), 3 ranks sharing one
// GPU (NCCL declines: the staged backend with its defaults: automatic
// chunks, reduce-scatter reduced on the host below 8 MiB blocks) and 4
// (staged, pipelined in small chunks set by SMP_STAGED_CHUNK_BYTES,
// reduce-scatter reduced on the device at every size), and through CUDA
// IPC with 3 and 4 ranks (the _ipc tests). Work
// goes to a non-default stream, so the ordering on the caller's stream is
// exercised. Sub-groups (SMP_PP_SIZE=2 with 4 ranks) create their own
// device communicators.
//
// Exact equality holds because NCCL with one rank copies (AVG goes as SUM
// there: nccl_types.h), a reduce-scatter reduced on the device combines in
// the host backend's order (reduce_many: the host's arithmetic, bit for
// bit) and the staged allreduce runs the host backend itself, with one
// exception: a staged allreduce makes one host
// allreduce per chunk, and with 3 or more ranks the order in which a float
// element's terms are summed (or multiplied) depends on how the host
// backend partitions the message (MPI_Allreduce's algorithm for the size;
// the owner of each element in smp's own half-precision allreduce). There,
// float SUM/AVG/PROD results may differ in their last bits (seen on an
// H200: 189 of 280004 bytes of a 3-rank float32 sum) and are compared
// within a few units in the last place; every rank still gets the same
// bytes. NCCL across several GPUs rounds half types at every hop, so there
// half reductions would need a tolerance too.
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <smp/smp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "gpu_util.h"

using gpu_test::DeviceBuffer;

namespace {

int g_rank = 0, g_failures = 0, g_checks = 0;
cudaStream_t g_stream = nullptr;
uint64_t g_seed = 0;

const smp_dtype_t kDTypes[] = {SMP_FLOAT32, SMP_FLOAT64, SMP_FLOAT16, SMP_BFLOAT16,
                               SMP_INT8,    SMP_UINT8,   SMP_INT32,   SMP_INT64};
const char *kDTypeNames[] = {"f32", "f64", "f16", "bf16", "i8", "u8", "i32", "i64"};
const char *kOpNames[] = {"sum", "avg", "max", "min", "prod"};
size_t esize(smp_dtype_t t) {
  static const size_t s[] = {4, 8, 2, 2, 1, 1, 4, 8};
  return s[t];
}

void expect(bool ok, const std::string &what) {
  ++g_checks;
  if (!ok) {
    ++g_failures;
    if (g_failures <= 20) std::fprintf(stderr, "rank %d: FAIL %s (seed %llu)\n", g_rank, what.c_str(),
                                       static_cast<unsigned long long>(g_seed));
  }
}

void ok(smp_status_t s, const std::string &what) {
  expect(s == SMP_SUCCESS, what + ": " + smp_status_string(s) + ": " + smp_last_error());
}

// n random elements of t: small magnitudes, so PROD over a few ranks stays finite.
std::vector<char> random_bytes(std::mt19937_64 &rng, smp_dtype_t t, size_t n) {
  std::vector<char> b(n * esize(t));
  std::uniform_real_distribution<float> f(-2.0f, 2.0f);
  std::uniform_int_distribution<int> i(-3, 3);
  for (size_t k = 0; k < n; ++k) {
    char *p = b.data() + k * esize(t);
    switch (t) {
      case SMP_FLOAT32: { float x = f(rng); std::memcpy(p, &x, 4); break; }
      case SMP_FLOAT64: { double x = f(rng); std::memcpy(p, &x, 8); break; }
      case SMP_FLOAT16: case SMP_BFLOAT16: {
        // A random finite half: sign, small exponent range, any mantissa.
        uint16_t h = static_cast<uint16_t>(rng());
        h = t == SMP_FLOAT16 ? static_cast<uint16_t>((h & 0x83ff) | (0x3800 + ((h >> 10) & 0x7) * 0x400))
                             : static_cast<uint16_t>((h & 0x807f) | (0x3f00 + ((h >> 7) & 0x3) * 0x80));
        std::memcpy(p, &h, 2);
        break;
      }
      case SMP_INT8: case SMP_UINT8: { int8_t x = static_cast<int8_t>(i(rng)); std::memcpy(p, &x, 1); break; }
      case SMP_INT32: { int32_t x = i(rng) * 1000; std::memcpy(p, &x, 4); break; }
      case SMP_INT64: { int64_t x = static_cast<int64_t>(i(rng)) * (int64_t{1} << 33); std::memcpy(p, &x, 8); break; }
    }
  }
  return b;
}

// One call on host buffers and the same on device buffers; the inputs are
// the same bytes, the outputs are compared byte for byte.
struct Run {
  std::vector<char> in;       // input bytes (also the in-place buffer's initial contents)
  size_t out_bytes;
  // fn(in, out): in == out for in-place forms
  std::function<smp_status_t(const void *, void *)> fn;
};

// The value of an element of dtype t at p, as a double.
double value(const char *p, smp_dtype_t t) {
  uint16_t h = 0;
  switch (t) {
    case SMP_FLOAT32: { float x; std::memcpy(&x, p, 4); return x; }
    case SMP_FLOAT64: { double x; std::memcpy(&x, p, 8); return x; }
    case SMP_BFLOAT16: std::memcpy(&h, p, 2); return smp::bf16_to_float(h);
    case SMP_FLOAT16: std::memcpy(&h, p, 2); return smp::f16_to_float(h);
    default: return NAN;  // integers are compared exactly
  }
}

// Tolerance, relative to max(1, |result|), for a result whose terms were
// combined in another order: up to 4 terms in [-2, 2] have partial sums up
// to 8, where a float's unit in the last place is 8 of those at 1, so a
// few roundings in another order stay within 64; half types accumulate in
// float32 and round once, so one unit of the half type.
double ulps_tolerance(smp_dtype_t t) {
  switch (t) {
    case SMP_FLOAT32: return 64 * std::ldexp(1.0, -23);
    case SMP_FLOAT64: return 64 * std::ldexp(1.0, -52);
    case SMP_FLOAT16: return std::ldexp(1.0, -10);
    case SMP_BFLOAT16: return std::ldexp(1.0, -7);
    default: return 0;
  }
}

bool is_float(smp_dtype_t t) {
  return t == SMP_FLOAT32 || t == SMP_FLOAT64 || t == SMP_FLOAT16 || t == SMP_BFLOAT16;
}

// order_dependent: float elements may differ within ulps_tolerance (see the
// top of the file); everything else must be equal byte for byte.
void compare(const std::string &what, const Run &r, bool in_place, smp_dtype_t t = SMP_UINT8,
             bool order_dependent = false, smp_group_t g = SMP_WORLD) {
  std::vector<char> host_in = r.in, host_out(in_place ? 0 : r.out_bytes, static_cast<char>(0xff));
  void *hout = in_place ? host_in.data() : host_out.data();
  ok(r.fn(host_in.data(), hout), what + " (host)");
  DeviceBuffer din(r.in.size()), dout(in_place ? 0 : r.out_bytes);
  // Input and poison are enqueued on the caller's stream and not waited
  // for: the call must order its own work after them.
  din.upload(r.in.data(), g_stream);
  if (!in_place) dout.poison(g_stream);
  void *dptr_out = in_place ? din.get() : dout.get();
  ok(r.fn(din.get(), dptr_out), what + " (cuda)");
  GPU_CHECK(cudaStreamSynchronize(g_stream));
  std::vector<char> got(in_place ? r.in.size() : r.out_bytes);
  GPU_CHECK(cudaMemcpy(got.data(), dptr_out, got.size(), cudaMemcpyDeviceToHost));
  const std::vector<char> &want = in_place ? host_in : host_out;
  size_t bad = 0, nbad = 0, poisoned = 0;
  const size_t es = esize(t);
  for (size_t i = 0; i < want.size(); ++i)
    if (got[i] != want[i]) {
      if (order_dependent) {  // the whole element, within the tolerance
        const size_t e0 = i - i % es;
        const double g = value(got.data() + e0, t), w = value(want.data() + e0, t);
        i = e0 + es - 1;
        if (std::isfinite(g) && std::isfinite(w) &&
            std::fabs(g - w) <= ulps_tolerance(t) * std::max(1.0, std::fabs(w)))
          continue;
      }
      if (nbad++ == 0) bad = i;
      poisoned += static_cast<unsigned char>(got[i]) == 0xff;
    }
  if (order_dependent) {  // whatever the order, every rank of the group holds the same bytes
    int64_t h = static_cast<int64_t>(std::hash<std::string>{}(std::string(got.begin(), got.end())) >> 1);
    int64_t lo = 0, hi = 0;
    ok(smp_allreduce(&h, &lo, 1, SMP_INT64, SMP_MIN, g, nullptr), what + " (hash min)");
    ok(smp_allreduce(&h, &hi, 1, SMP_INT64, SMP_MAX, g, nullptr), what + " (hash max)");
    expect(lo == hi, what + ": the ranks of the group hold different results");
  }
  expect(nbad == 0, what + (nbad ? ": " + std::to_string(nbad) + " of " + std::to_string(want.size()) +
                                       (order_dependent ? " bytes (elements) differ beyond the tolerance"
                                                        : " bytes differ") +
                                       ", the first at byte " + std::to_string(bad) + ", " +
                                       std::to_string(poisoned) + " of them still poison (0xff)"
                                 : ""));
}

void run_group(smp_group_t g, const char *gname, std::mt19937_64 &rng) {
  int rank = 0, size = 1;
  smp_rank(g, &rank);
  smp_size(g, &size);
  void *s = g_stream;
  for (size_t ti = 0; ti < std::size(kDTypes); ++ti) {  // kDTypeNames[ti] names kDTypes[ti]
    const smp_dtype_t t = kDTypes[ti];
    const size_t es = esize(t);
    const std::string tn = std::string(gname) + " " + kDTypeNames[ti];
    for (size_t n : {size_t{1}, size_t{1000}, size_t{70001}}) {
      const std::string nn = " n=" + std::to_string(n);
      for (int op = 0; op < 5; ++op) {
        const auto o = static_cast<smp_op_t>(op);
        Run ar{random_bytes(rng, t, n), n * es,
               [&](const void *in, void *out) { return smp_allreduce(in, out, n, t, o, g, s); }};
        // Chunked staged allreduce, 3+ ranks: float SUM/AVG/PROD within rounding.
        const bool order = size >= 3 && is_float(t) && (o == SMP_SUM || o == SMP_AVG || o == SMP_PROD);
        compare(tn + " allreduce " + kOpNames[op] + nn, ar, false, t, order, g);
        compare(tn + " allreduce in place " + kOpNames[op] + nn, ar, true, t, order, g);
        Run rs{random_bytes(rng, t, n * size), n * es,
               [&](const void *in, void *out) { return smp_reduce_scatter(in, out, n, t, o, g, s); }};
        compare(tn + " reduce_scatter " + kOpNames[op] + nn, rs, false);
      }
      Run ag{random_bytes(rng, t, n), n * es * size,
             [&](const void *in, void *out) { return smp_allgather(in, out, n, t, g, s); }};
      compare(tn + " allgather" + nn, ag, false);
      Run bc{random_bytes(rng, t, n), 0,
             [&](const void *in, void *) { return smp_broadcast(const_cast<void *>(in), n, t, size - 1, g, s); }};
      compare(tn + " broadcast" + nn, bc, true);
      // gatherv: rank r sends n + r elements to root 0.
      std::vector<size_t> counts(static_cast<size_t>(size));
      size_t total = 0;
      for (int r = 0; r < size; ++r) total += (counts[r] = n + static_cast<size_t>(r));
      Run gv{random_bytes(rng, t, n + static_cast<size_t>(rank)), rank == 0 ? total * es : 1,
             [&](const void *in, void *out) {
               return smp_gatherv(in, n + static_cast<size_t>(rank), rank == 0 ? out : nullptr,
                                  counts.data(), t, 0, g, s);
             }};
      compare(tn + " gatherv" + nn, gv, false);
      if (size > 1) {  // a ring: send to the next rank, receive from the previous
        const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
        Run p2p{random_bytes(rng, t, n), n * es, [&](const void *in, void *out) {
                  smp_request_t rq = nullptr;
                  smp_status_t st = smp_irecv(out, n, t, prev, g, 3, s, &rq);
                  if (st != SMP_SUCCESS) return st;
                  st = smp_send(in, n, t, next, g, 3, s);
                  const smp_status_t w = smp_wait(rq);
                  return st != SMP_SUCCESS ? st : w;
                }};
        compare(tn + " send/irecv ring" + nn, p2p, false);
        Run p2p2{random_bytes(rng, t, n), n * es, [&](const void *in, void *out) {
                   smp_request_t rq = nullptr;
                   smp_status_t st = smp_isend(in, n, t, next, g, 4, s, &rq);
                   if (st != SMP_SUCCESS) return st;
                   st = smp_recv(out, n, t, prev, g, 4, s);
                   const smp_status_t w = smp_wait(rq);
                   return st != SMP_SUCCESS ? st : w;
                 }};
        compare(tn + " isend/recv ring" + nn, p2p2, false);
      }
      Run iar{random_bytes(rng, t, n), n * es, [&](const void *in, void *out) {
                smp_request_t rq = nullptr;
                const smp_status_t st = smp_iallreduce(in, out, n, t, SMP_SUM, g, s, &rq);
                return st != SMP_SUCCESS ? st : smp_wait(rq);
              }};
      compare(tn + " iallreduce sum" + nn, iar, false, t, size >= 3 && is_float(t), g);
    }
  }
}

}  // namespace

int main() {
  gpu_test::skip_without_gpu("gpu_collectives_test");
  int ndev = 0;
  GPU_CHECK(cudaGetDeviceCount(&ndev));
  if (smp_init(nullptr) != SMP_SUCCESS) {
    std::fprintf(stderr, "smp_init: %s\n", smp_last_error());
    return 1;
  }
  int size = 1;
  smp_rank(SMP_WORLD, &g_rank);
  smp_size(SMP_WORLD, &size);
  const char *dev = std::getenv("SMP_DEVICE");
  GPU_CHECK(cudaSetDevice(dev && std::atoi(dev) >= 0 ? std::atoi(dev) % ndev : g_rank % ndev));
  GPU_CHECK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  uint64_t seed = gpu_test::fresh_seed();
  MPI_Bcast(&seed, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  g_seed = seed;
  std::mt19937_64 rng(seed + static_cast<uint64_t>(g_rank));
  run_group(SMP_WORLD, "WORLD", rng);
  int pp = 1;
  smp_size(SMP_PP_GROUP, &pp);
  if (pp > 1) run_group(SMP_PP_GROUP, "PP_GROUP", rng);
  int failures = g_failures;
  MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (g_rank == 0)
    std::printf("gpu_collectives_test: %d ranks, %d checks per rank, %d failures (seed %llu)\n", size, g_checks,
                failures, static_cast<unsigned long long>(seed));
  cudaStreamDestroy(g_stream);
  smp_finalize();
  return failures == 0 ? 0 : 1;
}
