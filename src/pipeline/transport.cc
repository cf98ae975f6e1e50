#include "pipeline/transport.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <cstring>
#include <sstream>

#include "common/error.h"
#include "trace/timeline.h"

namespace smp::pipeline {

namespace {

constexpr uint32_t kMagic = 0x534d5054;  // "SMPT"

// The wire header. Fixed size, so its receive can be posted before anything
// is known about the tensor.
struct WireHeader {
  uint32_t magic;
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
  int32_t ndim;
  uint32_t reserved;
  int64_t shape[kMaxTensorDims];
};
static_assert(sizeof(WireHeader) == 144, "the header is part of the wire format");

int header_tag(int tag) { return 2 * tag; }
int payload_tag(int tag) { return 2 * tag + 1; }

std::string where(const char *what, int peer, int tag) {
  return std::string(what) + " (peer " + std::to_string(peer) + ", tag " + std::to_string(tag) + ")";
}

void check_peer_tag(const comm::Communicator &comm, const char *what, int peer, int tag) {
  if (peer < 0 || peer >= comm.size())
    invalid(std::string(what) + ": peer " + std::to_string(peer) + " is not a rank of " +
            comm.group_name() + " (size " + std::to_string(comm.size()) + ")");
  if (tag < 0 || tag > kMaxTensorTag)
    invalid(std::string(what) + ": tag " + std::to_string(tag) + " is not in 0.." +
            std::to_string(kMaxTensorTag));
}

size_t element_bytes(DLDataType t) { return static_cast<size_t>(t.bits) * t.lanes / 8; }

const char *code_name(uint8_t code) {
  switch (code) {
    case kDLInt: return "int";
    case kDLUInt: return "uint";
    case kDLFloat: return "float";
    case kDLBfloat: return "bfloat";
    case kDLComplex: return "complex";
    default: return "code";
  }
}

// Receives whose payload goes to the caller, a fresh tensor, or (when the
// header disagrees with the caller's tensor) a scratch buffer.
struct Incoming {
  comm::RequestPtr header_req;
  WireHeader header{};
  comm::RequestPtr payload_req;
  std::unique_ptr<unsigned char[]> scratch;
};

}  // namespace

std::string describe_tensor(DLDataType dtype, const int64_t *shape, int ndim) {
  std::ostringstream s;
  s << code_name(dtype.code) << static_cast<int>(dtype.bits);
  if (dtype.lanes != 1) s << "x" << dtype.lanes;
  s << "[";
  for (int i = 0; i < ndim; ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

size_t tensor_nbytes(const DLTensor &t) {
  if (t.ndim < 0 || t.ndim > kMaxTensorDims)
    invalid("tensor has ndim " + std::to_string(t.ndim) + "; supported: 0.." + std::to_string(kMaxTensorDims));
  if (t.ndim > 0 && t.shape == nullptr) invalid("tensor has ndim " + std::to_string(t.ndim) + " but shape is NULL");
  if (t.dtype.bits == 0 || t.dtype.bits % 8 != 0 || t.dtype.lanes == 0)
    invalid("tensor dtype " + describe_tensor(t.dtype, nullptr, 0) +
            " is not a whole number of bytes per element");
  if (t.device.device_type != kDLCPU && t.device.device_type != kDLCUDAHost &&
      t.device.device_type != kDLCUDA && t.device.device_type != kDLCUDAManaged)
    fail(Status::Unsupported, "tensor device type " + std::to_string(t.device.device_type) +
                                  " is not supported (CPU, CUDA host, CUDA or managed memory only)");
  size_t n = element_bytes(t.dtype);
  int64_t expect_stride = 1;
  // An empty tensor has no layout to check (PyTorch reports strides for
  // shape (4, 0, 2) that are not row-major).
  bool empty = false;
  for (int i = 0; i < t.ndim; ++i) empty = empty || t.shape[i] == 0;
  for (int i = t.ndim - 1; i >= 0; --i) {
    if (t.shape[i] < 0) invalid("tensor shape[" + std::to_string(i) + "] is negative");
    // Strides of size-1 dimensions do not matter (PyTorch reports anything).
    if (!empty && t.strides != nullptr && t.shape[i] != 1 && t.strides[i] != expect_stride)
      invalid("tensor " + describe_tensor(t.dtype, t.shape, t.ndim) +
              " is not contiguous (row-major); make it contiguous before sending");
    expect_stride *= t.shape[i];
    const auto dim = static_cast<size_t>(t.shape[i]);
    if (dim != 0 && n > SIZE_MAX / dim) invalid("tensor is larger than the address space");
    n *= dim;
  }
  if (n > 0 && t.data == nullptr) invalid("tensor data is NULL");
  return n;
}

namespace {

// Freed tensor buffers, kept for reuse by size class.
class BufferCache {
 public:
  static size_t size_class(size_t bytes) {
    size_t top = 64;
    while (top < bytes && top < (SIZE_MAX >> 1)) top <<= 1;
    const size_t step = std::max<size_t>(64, top / 16);  // at most 1/8 over the request
    return ((std::max<size_t>(bytes, 1) + step - 1) / step) * step;
  }
  void *get(size_t capacity) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(capacity);
      if (it != free_.end() && !it->second.empty()) {
        void *p = it->second.back();
        it->second.pop_back();
        cached_ -= capacity;
        return p;
      }
    }
    void *p = std::aligned_alloc(64, capacity);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void put(void *p, size_t capacity) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + capacity <= kMaxCached) {
        free_[capacity].push_back(p);
        cached_ += capacity;
        return;
      }
    }
    std::free(p);
  }

 private:
  static constexpr size_t kMaxCached = size_t(1) << 30;
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void *>> free_;
  size_t cached_ = 0;
};

// Never destroyed: tensors handed out through DLPack may be freed during
// static destruction.
BufferCache &buffers() {
  static BufferCache *c = new BufferCache;
  return *c;
}

}  // namespace

void OwnedTensor::Free::operator()(void *p) const { buffers().put(p, capacity); }

OwnedTensor::OwnedTensor(DLDataType dtype, std::vector<int64_t> shape)
    : dtype_(dtype), shape_(std::move(shape)) {
  nbytes_ = element_bytes(dtype);
  for (int64_t d : shape_) nbytes_ *= static_cast<size_t>(d);
  // 64-byte aligned, never NULL (an empty tensor gets a 64-byte buffer).
  const size_t capacity = BufferCache::size_class(nbytes_);
  data_ = std::unique_ptr<void, Free>(buffers().get(capacity), Free{capacity});
}

DLTensor OwnedTensor::view() {
  DLTensor t{};
  t.data = data_.get();
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = static_cast<int>(shape_.size());
  t.dtype = dtype_;
  t.shape = shape_.data();
  t.strides = nullptr;
  t.byte_offset = 0;
  return t;
}

namespace {
struct ManagedContext {
  std::vector<int64_t> shape;
  void *data;
  size_t capacity;
};
void delete_managed(DLManagedTensor *self) {
  auto *ctx = static_cast<ManagedContext *>(self->manager_ctx);
  buffers().put(ctx->data, ctx->capacity);
  delete ctx;
  delete self;
}
}  // namespace

DLManagedTensor *OwnedTensor::release_to_dlpack() {
  auto ctx = std::make_unique<ManagedContext>();
  auto m = std::make_unique<DLManagedTensor>();
  ctx->shape = shape_;
  m->dl_tensor = view();
  m->dl_tensor.shape = ctx->shape.data();
  ctx->capacity = data_.get_deleter().capacity;
  ctx->data = data_.release();
  m->manager_ctx = ctx.release();
  m->deleter = delete_managed;
  return m.release();
}

PendingSends::~PendingSends() {
  try {
    wait();
  } catch (...) {  // a destructor must not throw; the error was the caller's to see
  }
}

void PendingSends::add(comm::RequestPtr req, std::unique_ptr<unsigned char[]> header) {
  reqs_.push_back(std::move(req));
  if (header) headers_.push_back(std::move(header));
}

void PendingSends::wait() {
  std::string first;
  for (auto &r : reqs_) {
    try {
      r->wait();
    } catch (const Error &e) {
      if (first.empty()) first = e.what();
    }
  }
  reqs_.clear();
  headers_.clear();
  if (!first.empty()) fail(Status::Backend, first);
}

bool PendingSends::test() {
  for (auto &r : reqs_)
    if (!r->test()) return false;
  reqs_.clear();
  headers_.clear();
  return true;
}

void PendingSends::append(PendingSends &&other) {
  for (auto &r : other.reqs_) reqs_.push_back(std::move(r));
  for (auto &h : other.headers_) headers_.push_back(std::move(h));
  other.reqs_.clear();
  other.headers_.clear();
}

namespace {

// Returns the bytes received.
size_t exchange_impl(comm::Communicator &comm, const std::vector<SendSpec> &sends,
                     std::vector<RecvSpec> &recvs, PendingSends *pending) {
  // Everything is validated before the first message moves.
  std::vector<size_t> send_bytes;
  for (const SendSpec &s : sends) {
    check_peer_tag(comm, "send_tensor", s.peer, s.tag);
    if (s.tensor == nullptr) invalid(where("send_tensor", s.peer, s.tag) + ": tensor is NULL");
    send_bytes.push_back(tensor_nbytes(*s.tensor));
  }
  for (const RecvSpec &r : recvs) {
    check_peer_tag(comm, "recv_tensor", r.peer, r.tag);
    if (r.into != nullptr) tensor_nbytes(*r.into);
  }

  PendingSends out;
  for (size_t i = 0; i < sends.size(); ++i) {
    const DLTensor &t = *sends[i].tensor;
    auto buf = std::make_unique<unsigned char[]>(sizeof(WireHeader));
    WireHeader h{};
    h.magic = kMagic;
    h.code = t.dtype.code;
    h.bits = t.dtype.bits;
    h.lanes = t.dtype.lanes;
    h.ndim = t.ndim;
    for (int d = 0; d < t.ndim; ++d) h.shape[d] = t.shape[d];
    std::memcpy(buf.get(), &h, sizeof h);
    auto hreq = comm.isend(buf.get(), sizeof h, DType::U8, sends[i].peer, header_tag(sends[i].tag));
    out.add(std::move(hreq), std::move(buf));
    if (send_bytes[i] > 0) {
      const void *data = static_cast<const char *>(t.data) + t.byte_offset;
      out.add(comm.isend(data, send_bytes[i], DType::U8, sends[i].peer, payload_tag(sends[i].tag)));
    }
  }

  std::vector<Incoming> in(recvs.size());
  for (size_t i = 0; i < recvs.size(); ++i)
    in[i].header_req = comm.irecv(&in[i].header, sizeof(WireHeader), DType::U8, recvs[i].peer,
                                  header_tag(recvs[i].tag));

  // Headers in posting order; each payload receive is posted as soon as its
  // header says where it goes, in the same order, so payloads from one
  // (peer, tag) pair up with their headers.
  std::string mismatch, corrupt;
  for (size_t i = 0; i < recvs.size(); ++i) {
    RecvSpec &r = recvs[i];
    Incoming &x = in[i];
    x.header_req->wait();
    const WireHeader &h = x.header;
    if (h.magic != kMagic || h.ndim < 0 || h.ndim > kMaxTensorDims) {
      corrupt += (corrupt.empty() ? "" : "; ") + where("recv_tensor", r.peer, r.tag) +
                 ": the message is not a tensor header (did the peer call send rather than "
                 "send_tensor?)";
      continue;
    }
    const DLDataType dt{h.code, h.bits, h.lanes};
    std::vector<int64_t> shape(h.shape, h.shape + h.ndim);
    size_t nbytes = element_bytes(dt);
    bool sane = h.bits % 8 == 0 && h.bits > 0 && h.lanes > 0;
    for (int64_t d : shape) {
      if (d < 0 || (d > 0 && nbytes > (SIZE_MAX >> 1) / static_cast<size_t>(d))) sane = false;
      if (sane) nbytes *= static_cast<size_t>(d);
    }
    if (!sane) {
      corrupt += (corrupt.empty() ? "" : "; ") + where("recv_tensor", r.peer, r.tag) +
                 ": the tensor header is malformed (negative or oversized shape, or a dtype of "
                 "partial bytes)";
      continue;
    }
    void *dest = nullptr;
    if (r.into == nullptr) {
      r.result = OwnedTensor(dt, shape);
      dest = r.result.data();
    } else {
      const DLTensor &t = *r.into;
      std::string diff;
      if (t.dtype.code != dt.code || t.dtype.bits != dt.bits || t.dtype.lanes != dt.lanes)
        diff = "dtype differs";
      if (t.ndim != h.ndim) {
        diff += std::string(diff.empty() ? "" : ", ") + "ndim differs (" + std::to_string(h.ndim) +
                " vs " + std::to_string(t.ndim) + ")";
      } else {
        for (int d = 0; d < t.ndim; ++d)
          if (t.shape[d] != h.shape[d]) {
            diff += std::string(diff.empty() ? "" : ", ") + "dimension " + std::to_string(d) +
                    " differs (" + std::to_string(h.shape[d]) + " vs " + std::to_string(t.shape[d]) + ")";
          }
      }
      if (diff.empty()) {
        dest = static_cast<char *>(t.data) + t.byte_offset;
      } else {
        mismatch += (mismatch.empty() ? "" : "; ") + where("recv_tensor_into", r.peer, r.tag) +
                    ": received " + describe_tensor(dt, h.shape, h.ndim) + " into a tensor of " +
                    describe_tensor(t.dtype, t.shape, t.ndim) + ": " + diff;
        // Drain the payload so that the sender completes.
        x.scratch.reset(new unsigned char[nbytes > 0 ? nbytes : 1]);
        dest = x.scratch.get();
      }
    }
    if (nbytes > 0) x.payload_req = comm.irecv(dest, nbytes, DType::U8, r.peer, payload_tag(r.tag));
  }
  size_t received = 0;
  for (Incoming &x : in)
    if (x.payload_req) x.payload_req->wait();
  for (const RecvSpec &r : recvs) received += r.into ? tensor_nbytes(*r.into) : r.result.nbytes();

  if (pending != nullptr)
    pending->append(std::move(out));
  else
    out.wait();
  if (!corrupt.empty()) fail(Status::Corrupt, corrupt);
  if (!mismatch.empty()) fail(Status::PeerFailed, mismatch);
  return received;
}

}  // namespace

void exchange(comm::Communicator &comm, const std::vector<SendSpec> &sends,
              std::vector<RecvSpec> &recvs, PendingSends *pending) {
  trace::Args a;
  a.group = comm.group_name();
  trace::Scope scope("exchange_tensors", a);
  const size_t received = exchange_impl(comm, sends, recvs, pending);
  if (trace::enabled()) {
    size_t sent = 0;
    for (const SendSpec &s : sends) sent += tensor_nbytes(*s.tensor);
    scope.set_bytes(static_cast<long long>(sent + received));
  }
}

void send_tensor(comm::Communicator &comm, const DLTensor &tensor, int peer, int tag) {
  trace::Args a;
  a.group = comm.group_name();
  a.peer = peer;
  trace::Scope scope("send_tensor", a);
  std::vector<RecvSpec> none;
  exchange_impl(comm, {SendSpec{&tensor, peer, tag}}, none, nullptr);
  scope.set_bytes(static_cast<long long>(tensor_nbytes(tensor)));
}

OwnedTensor recv_tensor(comm::Communicator &comm, int peer, int tag) {
  trace::Args a;
  a.group = comm.group_name();
  a.peer = peer;
  trace::Scope scope("recv_tensor", a);
  std::vector<RecvSpec> r(1);
  r[0].peer = peer;
  r[0].tag = tag;
  scope.set_bytes(static_cast<long long>(exchange_impl(comm, {}, r, nullptr)));
  return std::move(r[0].result);
}

void recv_tensor_into(comm::Communicator &comm, DLTensor &tensor, int peer, int tag) {
  trace::Args a;
  a.group = comm.group_name();
  a.peer = peer;
  trace::Scope scope("recv_tensor", a);
  std::vector<RecvSpec> r(1);
  r[0].peer = peer;
  r[0].tag = tag;
  r[0].into = &tensor;
  scope.set_bytes(static_cast<long long>(exchange_impl(comm, {}, r, nullptr)));
}

}  // namespace smp::pipeline
