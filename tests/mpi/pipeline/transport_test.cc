// The tensor transport under mpirun, 2..8 ranks in a chain:
//  - exchange(): every rank swaps tensors with both neighbours in one call,
//    the specs in a different order on every rank, payloads large enough
//    for MPI's rendezvous protocol (where a mis-ordered blocking handshake
//    deadlocks), shapes and dtypes changing every iteration and learned
//    from the headers, two tensors on one (peer, tag) at once;
//  - errors: shape and dtype mismatch (clear message, sender not left
//    hanging, the channel still usable), bad peer / tag / strides before
//    any communication, a raw message where a tensor header belongs.
// With --hang wrong-tag|wrong-peer it posts a receive nobody matches; run
// by expect_abort.sh under SMP_TIMEOUT, the job must end with the
// watchdog's message instead of hanging.
#include <algorithm>
#include <chrono>
#include <thread>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "mpi_check.h"
#include "pipeline/transport.h"

using namespace smp::pipeline;

namespace {

std::vector<int64_t> act_shape(int src, int iter) { return {1 + (src * 31 + iter * 17) % 300, 1024}; }
std::vector<int64_t> extra_shape(int src, int iter) { return {2, (src + iter) % 5, 3}; }  // may be empty
std::vector<int64_t> grad_shape(int src, int iter) { return {3 + (src * 7 + iter * 11) % 50000}; }

float act_value(int src, int iter, size_t i) { return static_cast<float>(src * 1000003 + iter * 7919 + static_cast<int>(i % 100000)); }
int64_t grad_value(int src, int iter, size_t i) { return -static_cast<int64_t>(i) * 31 + src * 1000 + iter; }
uint8_t extra_value(int src, int iter, size_t i) { return static_cast<uint8_t>(src * 13 + iter * 5 + i); }

OwnedTensor make(DLDataType t, std::vector<int64_t> shape) { return OwnedTensor(t, std::move(shape)); }
constexpr DLDataType kF32{kDLFloat, 32, 1}, kI64{kDLInt, 64, 1}, kU8{kDLUInt, 8, 1}, kI32{kDLInt, 32, 1};

size_t numel(const OwnedTensor &t) {
  size_t n = 1;
  for (int64_t d : t.shape()) n *= static_cast<size_t>(d);
  return n;
}

void chain_exchange(smp::comm::Communicator &comm) {
  const int rank = comm.rank(), size = comm.size();
  std::mt19937 rng(static_cast<unsigned>(rank) * 7919u + 1u);
  for (int iter = 0; iter < 6; ++iter) {
    // What this rank sends: an activation and an extra tensor forward (same
    // tag), a gradient backward.
    OwnedTensor act = make(kF32, act_shape(rank, iter)), extra = make(kU8, extra_shape(rank, iter)),
                grad = make(kI64, grad_shape(rank, iter));
    for (size_t i = 0; i < numel(act); ++i) static_cast<float *>(act.data())[i] = act_value(rank, iter, i);
    for (size_t i = 0; i < numel(extra); ++i) static_cast<uint8_t *>(extra.data())[i] = extra_value(rank, iter, i);
    for (size_t i = 0; i < numel(grad); ++i) static_cast<int64_t *>(grad.data())[i] = grad_value(rank, iter, i);
    DLTensor va = act.view(), ve = extra.view(), vg = grad.view();
    std::vector<SendSpec> sends;
    std::vector<RecvSpec> recvs;
    if (rank + 1 < size) {
      sends.push_back({&va, rank + 1, 0});
      sends.push_back({&ve, rank + 1, 0});
      RecvSpec r;
      r.peer = rank + 1;
      r.tag = 1;
      recvs.push_back(std::move(r));
    }
    if (rank > 0) {
      sends.push_back({&vg, rank - 1, 1});
      for (int k = 0; k < 2; ++k) {
        RecvSpec r;
        r.peer = rank - 1;
        r.tag = 0;
        recvs.push_back(std::move(r));
      }
    }
    // Any order of the sends, and of receives from different peers: the
    // call must not care. (Receives from one (peer, tag) keep their order:
    // that order is what pairs them with the sends.)
    std::shuffle(sends.begin(), sends.end(), rng);
    auto pa = std::find_if(sends.begin(), sends.end(), [&](const SendSpec &x) { return x.tensor == &va; });
    auto pe = std::find_if(sends.begin(), sends.end(), [&](const SendSpec &x) { return x.tensor == &ve; });
    if (pa != sends.end() && pe < pa) std::iter_swap(pa, pe);  // one (peer, tag): keep their order
    if (rng() % 2 && recvs.size() == 3) std::rotate(recvs.begin(), recvs.begin() + 1, recvs.end());
    exchange(comm, sends, recvs);
    int seen_from_prev = 0;
    for (RecvSpec &r : recvs) {
      const OwnedTensor &t = r.result;
      if (r.peer == rank + 1) {
        CHECK(t.dtype().code == kDLInt && t.dtype().bits == 64 && t.shape() == grad_shape(r.peer, iter));
        for (size_t i = 0; i < numel(t); ++i)
          CHECK(static_cast<const int64_t *>(t.data())[i] == grad_value(r.peer, iter, i));
      } else if (seen_from_prev++ == 0) {
        CHECK_MSG(t.dtype().code == kDLFloat && t.shape() == act_shape(r.peer, iter),
                  "iter " + std::to_string(iter) + " got " +
                      describe_tensor(t.dtype(), t.shape().data(), static_cast<int>(t.shape().size())));
        for (size_t i = 0; i < numel(t); ++i)
          CHECK(static_cast<const float *>(t.data())[i] == act_value(r.peer, iter, i));
      } else {
        CHECK(t.dtype().code == kDLUInt && t.shape() == extra_shape(r.peer, iter));
        for (size_t i = 0; i < numel(t); ++i)
          CHECK(static_cast<const uint8_t *>(t.data())[i] == extra_value(r.peer, iter, i));
      }
    }
  }
}

template <class F>
std::string error_of(F &&f, smp::Status expect) {
  try {
    f();
  } catch (const smp::Error &e) {
    CHECK_MSG(e.status() == expect, std::string("status ") + std::to_string(static_cast<int>(e.status())) + ": " + e.what());
    return e.what();
  }
  return "no error";
}

bool has(const std::string &s, const std::string &part) { return s.find(part) != std::string::npos; }

void errors(smp::comm::Communicator &comm) {
  const int rank = comm.rank(), size = comm.size();
  OwnedTensor a = make(kF32, {4, 8});
  for (int i = 0; i < 32; ++i) static_cast<float *>(a.data())[i] = static_cast<float>(i);
  DLTensor va = a.view();

  // Before any communication: every rank checks its own bad arguments.
  std::string e = error_of([&] { send_tensor(comm, va, size, 0); }, smp::Status::InvalidArgument);
  CHECK_MSG(has(e, "peer " + std::to_string(size) + " is not a rank of PP_GROUP (size " + std::to_string(size) + ")"), e);
  e = error_of([&] { recv_tensor(comm, -1, 0); }, smp::Status::InvalidArgument);
  CHECK_MSG(has(e, "peer -1"), e);
  e = error_of([&] { send_tensor(comm, va, 0, kMaxTensorTag + 1); }, smp::Status::InvalidArgument);
  CHECK_MSG(has(e, "tag 16384 is not in 0..16383"), e);
  int64_t strides[2] = {1, 4};
  DLTensor transposed = va;
  transposed.strides = strides;
  e = error_of([&] { send_tensor(comm, transposed, 0, 0); }, smp::Status::InvalidArgument);
  CHECK_MSG(has(e, "not contiguous"), e);
  // An empty tensor's strides are whatever the framework reports (torch:
  // (2, 2, 1) for shape (4, 0, 2)): no layout, nothing to refuse.
  int64_t empty_shape[3] = {4, 0, 2}, torch_strides[3] = {2, 2, 1};
  DLTensor empty = va;
  empty.ndim = 3;
  empty.shape = empty_shape;
  empty.strides = torch_strides;
  CHECK(tensor_nbytes(empty) == 0);

  if (rank == 0) {
    send_tensor(comm, va, 1, 3);  // mismatched shape on the other side: must still complete
    send_tensor(comm, va, 1, 3);  // then the right one
    OwnedTensor i = make(kI32, {3});
    DLTensor vi = i.view();
    std::memset(i.data(), 0, 12);
    send_tensor(comm, vi, 1, 4);
    unsigned char junk[144] = {1, 2, 3};
    comm.send(junk, sizeof junk, smp::DType::U8, 1, 2 * 5);  // a raw message on tag 5's header tag
  } else if (rank == 1) {
    OwnedTensor wrong = make(kF32, {4, 7});
    DLTensor vw = wrong.view();
    e = error_of([&] { recv_tensor_into(comm, vw, 0, 3); }, smp::Status::PeerFailed);
    CHECK_MSG(has(e, "received float32[4, 8] into a tensor of float32[4, 7]: dimension 1 differs (8 vs 7)"), e);
    OwnedTensor right = make(kF32, {4, 8});
    DLTensor vr = right.view();
    recv_tensor_into(comm, vr, 0, 3);
    CHECK(std::memcmp(right.data(), a.data(), 128) == 0);
    OwnedTensor f = make(kF32, {3});
    DLTensor vf = f.view();
    e = error_of([&] { recv_tensor_into(comm, vf, 0, 4); }, smp::Status::PeerFailed);
    CHECK_MSG(has(e, "received int32[3] into a tensor of float32[3]: dtype differs"), e);
    e = error_of([&] { recv_tensor(comm, 0, 5); }, smp::Status::Corrupt);
    CHECK_MSG(has(e, "not a tensor header"), e);
  }
  comm.barrier();
}

void hang(smp::comm::Communicator &comm, const std::string &how) {
  OwnedTensor a = make(kF32, {2, 2});
  DLTensor va = a.view();
  if (how == "wrong-tag") {
    // Rank 0 sends on tag 4, rank 1 waits on tag 3.
    if (comm.rank() == 0) send_tensor(comm, va, 1, 4);
    if (comm.rank() == 1) recv_tensor(comm, 0, 3);
  } else {
    // Rank 0 sends to rank 1; rank 2 (wrongly) waits for rank 0.
    if (comm.rank() == 0) send_tensor(comm, va, 1, 0);
    if (comm.rank() == 1) recv_tensor(comm, 0, 0);
    if (comm.rank() == 2) recv_tensor(comm, 0, 0);
  }
  // The others wait outside any smp call, so that the stuck rank's
  // watchdog is the one that ends the job.
  std::this_thread::sleep_for(std::chrono::seconds(30));
}

}  // namespace

int main(int argc, char **argv) {
  smp::comm::Context &ctx = smp_test::init_pipeline_world(&argc, &argv);
  smp::comm::Communicator &comm = ctx.group(smp::topo::Group::PP);
  if (argc == 3 && std::string(argv[1]) == "--hang") {
    hang(comm, argv[2]);
    smp_test::finish();
    return 0;  // not reached: the watchdog aborts the job
  }
  chain_exchange(comm);
  errors(comm);
  if (ctx.world_rank() == 0) std::printf("transport: %d ranks ok\n", comm.size());
  smp_test::finish();
  return 0;
}
