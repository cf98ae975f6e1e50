// Tensor transport between pipeline stages over a comm::Communicator.
//
// Every tensor travels as two messages on the same (peer, tag): a fixed
// 144-byte header (DLPack dtype, ndim, shape) on MPI tag 2*tag, then the
// payload on 2*tag + 1. The receiver learns dtype and shape from the header,
// so stages whose tensors change shape from microbatch to microbatch
// (varying sequence lengths) need no separate handshake; separate tags keep
// headers and payloads pairing up in order when several tensors from the
// same peer and tag are in flight at once.
//
// exchange() is the batched form: it issues every send (header and payload)
// and every header receive before it waits for anything, then posts each
// payload receive as its header arrives. Nothing in it waits on a send, so
// it cannot deadlock however the neighbours order their calls (the failure
// of a blocking per-message shape handshake that even and odd stages order
// differently).
#pragma once

#include <dlpack/dlpack.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/request.h"

namespace smp::pipeline {

inline constexpr int kMaxTensorDims = 16;
// User tags for tensors are 0..kMaxTensorTag (each uses two MPI tags, and
// MPI guarantees tags up to 32767).
inline constexpr int kMaxTensorTag = 16383;

// A received tensor whose storage this object owns (host memory, 64-byte
// aligned, compact row-major). Storage comes from a process-wide cache of
// freed buffers (size classes 1/8 of a power of two apart, at most 1 GiB
// kept), so steady-state receives of similar sizes do not pay for fresh
// pages, as frameworks' caching allocators do.
class OwnedTensor {
 public:
  OwnedTensor() = default;
  OwnedTensor(DLDataType dtype, std::vector<int64_t> shape);  // allocates, uninitialized
  DLDataType dtype() const { return dtype_; }
  const std::vector<int64_t> &shape() const { return shape_; }
  size_t nbytes() const { return nbytes_; }
  void *data() const { return data_.get(); }
  // A view (valid while this object lives).
  DLTensor view();
  // Hands the storage to a heap DLManagedTensor whose deleter frees it.
  DLManagedTensor *release_to_dlpack();

 private:
  struct Free {
    Free() : capacity(0) {}
    explicit Free(size_t c) : capacity(c) {}
    size_t capacity;  // bytes allocated (a size class), for the buffer cache
    void operator()(void *p) const;
  };
  DLDataType dtype_{};
  std::vector<int64_t> shape_;
  size_t nbytes_ = 0;
  std::unique_ptr<void, Free> data_;
};

// Sends still in flight after exchange(): their buffers (the tensors' data)
// must stay untouched until wait() (or test() returning true). A Request,
// so the C API can hand the lot out as one smp_request_t.
class PendingSends : public comm::Request {
 public:
  PendingSends() = default;
  PendingSends(PendingSends &&) = default;
  PendingSends &operator=(PendingSends &&) = default;
  ~PendingSends() override;  // waits
  void wait() override;
  bool test() override;      // true once every send completed (they are then released)
  size_t size() const { return reqs_.size(); }
  void append(PendingSends &&other);
  // Adopts a request (and the header buffer it reads from, if any).
  void add(comm::RequestPtr req, std::unique_ptr<unsigned char[]> header = nullptr);

 private:
  std::vector<comm::RequestPtr> reqs_;
  std::vector<std::unique_ptr<unsigned char[]>> headers_;
};

struct SendSpec {
  const DLTensor *tensor = nullptr;
  int peer = -1;
  int tag = 0;
};

struct RecvSpec {
  int peer = -1;
  int tag = 0;
  DLTensor *into = nullptr;  // receive into this tensor (shape and dtype must match),
                             // or nullptr: allocate `result` from the header
  OwnedTensor result;        // out, when into == nullptr
};

// Issues every send and receive, waits for the receives. Sends are waited
// for too unless `pending` is given, in which case they are moved there.
// Throws smp::Error: InvalidArgument before any communication for a bad
// spec (peer, tag, non-contiguous or unsupported tensor); PeerFailed after
// all transfers finished when a received header disagrees with an `into`
// tensor (the message names both shapes/dtypes; the payload is drained so
// the sender is not left hanging); Corrupt for a message that is not a
// tensor header.
void exchange(comm::Communicator &comm, const std::vector<SendSpec> &sends,
              std::vector<RecvSpec> &recvs, PendingSends *pending = nullptr);

void send_tensor(comm::Communicator &comm, const DLTensor &tensor, int peer, int tag);
OwnedTensor recv_tensor(comm::Communicator &comm, int peer, int tag);
void recv_tensor_into(comm::Communicator &comm, DLTensor &tensor, int peer, int tag);

// Helpers shared with the C API and tests.
size_t tensor_nbytes(const DLTensor &t);  // validates (throws InvalidArgument)
std::string describe_tensor(DLDataType dtype, const int64_t *shape, int ndim);  // "float32[4, 8]"

}  // namespace smp::pipeline
