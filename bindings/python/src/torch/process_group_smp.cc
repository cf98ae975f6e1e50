// The "smp" torch.distributed backend: see process_group_smp.h.
#include "process_group_smp.h"

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>

#include <cctype>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <utility>

namespace smp_torch {

using c10d::OpType;
using WorkPtr = c10::intrusive_ptr<c10d::Work>;

// Measured on 2 ranks of the 2-core machine (BENCHMARKS.md): blocking is
// 2-3x faster to 64 KiB, even at 1 MiB; from there on the overlap matters.
constexpr size_t kDefaultAsyncBytes = size_t{1} << 20;

namespace {

[[noreturn]] void fail(const char *op, const std::string &why) {
  TORCH_CHECK(false, "smp backend: ", op, ": ", why);
}

// A failed smp call, as the exception torch code expects (RuntimeError).
std::exception_ptr smp_error(const char *op, smp_status_t status) {
  return std::make_exception_ptr(
      c10::Error(std::string("smp backend: ") + op + ": " + smp_status_string(status) + ": " +
                     smp_last_error(),
                 ""));
}

void check(smp_status_t status, const char *op) {
  if (status != SMP_SUCCESS) std::rethrow_exception(smp_error(op, status));
}

const at::Tensor &one(const std::vector<at::Tensor> &tensors, const char *op) {
  if (tensors.size() != 1)
    fail(op, "takes one tensor per call (smp drives one device per rank), got " +
                 std::to_string(tensors.size()));
  return tensors[0];
}

// A tensor's memory as raw bytes: every op that only moves data carries any
// dtype this way.
struct Bytes {
  void *ptr;
  size_t count;
};
Bytes bytes(const at::Tensor &t) {
  return {t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size()};
}

// A tensor as smp's element type for a reduction with op. Complex tensors
// reduce as pairs of reals (SUM and AVG only), bool as bytes (MIN, MAX).
struct Elements {
  void *ptr;
  size_t count;
  smp_dtype_t dtype;
  smp_op_t op;
};
size_t dtype_bytes(smp_dtype_t d) {
  switch (d) {
    case SMP_FLOAT64: case SMP_INT64: return 8;
    case SMP_FLOAT32: case SMP_INT32: return 4;
    case SMP_FLOAT16: case SMP_BFLOAT16: return 2;
    default: return 1;
  }
}

Elements elements(const at::Tensor &t, const c10d::ReduceOp &reduce_op, const char *op) {
  smp_op_t sop = SMP_SUM;
  switch (reduce_op.op_) {
    case c10d::ReduceOp::SUM: sop = SMP_SUM; break;
    case c10d::ReduceOp::AVG: sop = SMP_AVG; break;
    case c10d::ReduceOp::PRODUCT: sop = SMP_PROD; break;
    case c10d::ReduceOp::MIN: sop = SMP_MIN; break;
    case c10d::ReduceOp::MAX: sop = SMP_MAX; break;
    case c10d::ReduceOp::BAND:
    case c10d::ReduceOp::BOR:
    case c10d::ReduceOp::BXOR:
      fail(op, "bitwise reductions (BAND, BOR, BXOR) are not supported by smp; use SUM, AVG, "
               "PRODUCT, MIN or MAX");
    default: fail(op, "ReduceOp " + std::to_string(int(reduce_op.op_)) + " is not supported by smp");
  }
  size_t count = static_cast<size_t>(t.numel());
  smp_dtype_t dtype;
  switch (t.scalar_type()) {
    case at::kFloat: dtype = SMP_FLOAT32; break;
    case at::kDouble: dtype = SMP_FLOAT64; break;
    case at::kHalf: dtype = SMP_FLOAT16; break;
    case at::kBFloat16: dtype = SMP_BFLOAT16; break;
    case at::kChar: dtype = SMP_INT8; break;
    case at::kByte: dtype = SMP_UINT8; break;
    case at::kInt: dtype = SMP_INT32; break;
    case at::kLong: dtype = SMP_INT64; break;
    case at::kBool:
      if (sop != SMP_MIN && sop != SMP_MAX) fail(op, "bool tensors reduce with MIN or MAX only");
      dtype = SMP_UINT8;
      break;
    case at::kComplexFloat:
    case at::kComplexDouble:
      if (sop != SMP_SUM && sop != SMP_AVG) fail(op, "complex tensors reduce with SUM or AVG only");
      dtype = t.scalar_type() == at::kComplexFloat ? SMP_FLOAT32 : SMP_FLOAT64;
      count *= 2;
      break;
    default:
      fail(op, std::string("dtype ") + c10::toString(t.scalar_type()) +
                   " is not one smp reduces (float32/64, float16, bfloat16, int8, uint8, int32, "
                   "int64, and bool or complex for some ops)");
  }
  return {t.data_ptr(), count, dtype, sop};
}

// The contiguous tensor an op works on: t itself, or a copy that `back`
// copies into t once the op is done.
at::Tensor dense(const at::Tensor &t, std::function<void()> *back) {
  if (t.is_contiguous()) return t;
  at::Tensor c = t.contiguous();
  if (back) {
    auto prev = std::move(*back);
    *back = [prev, t, c]() mutable {
      if (prev) prev();
      t.copy_(c);
    };
  }
  return c;
}

void same_shape(const at::Tensor &a, const at::Tensor &b, const char *op, const char *what) {
  if (a.scalar_type() != b.scalar_type() || a.numel() != b.numel())
    fail(op, std::string(what) + ": every tensor must have the input's dtype and size (" +
                 c10::toString(b.scalar_type()) + ", " + std::to_string(b.numel()) +
                 " elements), got " + c10::toString(a.scalar_type()) + ", " +
                 std::to_string(a.numel()));
}

at::Tensor flat_bytes(const std::vector<at::Tensor> &tensors) {
  std::vector<at::Tensor> parts;
  parts.reserve(tensors.size());
  for (const auto &t : tensors) parts.push_back(t.contiguous().view({-1}).view(at::kByte));
  return parts.empty() ? at::empty({0}, at::kByte) : at::cat(parts);
}

// Copies consecutive pieces of flat (bytes) into the tensors.
void unflatten_bytes(const at::Tensor &flat, std::vector<at::Tensor> &tensors) {
  int64_t off = 0;
  for (auto &t : tensors) {
    const int64_t n = t.numel() * t.element_size();
    t.copy_(flat.narrow(0, off, n).view(t.scalar_type()).view(t.sizes()));
    off += n;
  }
}


// Collectives smaller than this run blocking at the call, and their work is
// complete when returned: handing an op to smp's worker thread costs more
// than a small op itself (see BENCHMARKS.md). SMP_TORCH_ASYNC_BYTES sets it.
size_t async_min_bytes() {
  static const size_t bytes = [] {
    const char *v = std::getenv("SMP_TORCH_ASYNC_BYTES");
    char *end = nullptr;
    const unsigned long long x = v && *v ? std::strtoull(v, &end, 10) : kDefaultAsyncBytes;
    // Checked here, not through src/common/env.h: the plugin sits over the
    // C API only. A bad value would silently turn every op blocking or not.
    if (v && *v && (!std::isdigit(static_cast<unsigned char>(*v)) || *end != '\0'))
      throw std::invalid_argument(std::string("SMP_TORCH_ASYNC_BYTES='") + v + "' is not a number of bytes");
    return static_cast<size_t>(x);
  }();
  return bytes;
}

// Each runs one collective, non-blocking from async_min_bytes() up; returns
// the request to wait for (none when it ran blocking).
std::vector<smp_request_t> allreduce_op(const Elements &e, smp_group_t g, const char *op) {
  smp_request_t req = nullptr;
  if (e.count * dtype_bytes(e.dtype) < async_min_bytes()) {
    check(smp_allreduce(e.ptr, e.ptr, e.count, e.dtype, e.op, g, nullptr), op);
    return {};
  }
  check(smp_iallreduce(e.ptr, e.ptr, e.count, e.dtype, e.op, g, nullptr, &req), op);
  return {req};
}
std::vector<smp_request_t> allgather_op(const void *in, void *out, size_t bytes, smp_group_t g,
                                        const char *op) {
  smp_request_t req = nullptr;
  if (bytes < async_min_bytes()) {
    check(smp_allgather(in, out, bytes, SMP_UINT8, g, nullptr), op);
    return {};
  }
  check(smp_iallgather(in, out, bytes, SMP_UINT8, g, nullptr, &req), op);
  return {req};
}
std::vector<smp_request_t> reduce_scatter_op(const void *in, const Elements &out, smp_group_t g,
                                             const char *op) {
  smp_request_t req = nullptr;
  if (out.count * dtype_bytes(out.dtype) < async_min_bytes()) {
    check(smp_reduce_scatter(in, out.ptr, out.count, out.dtype, out.op, g, nullptr), op);
    return {};
  }
  check(smp_ireduce_scatter(in, out.ptr, out.count, out.dtype, out.op, g, nullptr, &req), op);
  return {req};
}
}  // namespace

// ---- Completer ---------------------------------------------------------

Completer::~Completer() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Completer::add(c10::intrusive_ptr<SmpWork> work) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  queue_.push_back(std::move(work));
  cv_.notify_one();
}

void Completer::loop() {
  for (;;) {
    c10::intrusive_ptr<SmpWork> work;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing is left
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    work->complete();
  }
}

// ---- SmpWork -----------------------------------------------------------

SmpWork::SmpWork(int rank, OpType type, const char *op, std::vector<smp_request_t> requests,
                 std::vector<at::Tensor> outputs, std::function<void()> then,
                 std::weak_ptr<Completer> completer)
    : c10d::Work(rank, type),
      op_(op),
      requests_(std::move(requests)),
      outputs_(std::move(outputs)),
      then_(std::move(then)),
      completer_(std::move(completer)) {}

SmpWork::SmpWork(int rank, const char *op, std::future<int> source,
                 std::vector<at::Tensor> outputs, std::weak_ptr<Completer> completer)
    : c10d::Work(rank, OpType::RECVANYSOURCE),
      op_(op),
      outputs_(std::move(outputs)),
      any_source_(std::move(source)),
      completer_(std::move(completer)) {}

// A work dropped before it completed still owns buffers smp writes into:
// wait for it rather than let smp write into freed memory.
SmpWork::~SmpWork() {
  try {
    complete();
  } catch (...) {
  }
}

void SmpWork::complete() {
  std::lock_guard<std::mutex> lock(wait_mutex_);
  if (done_) return;
  std::exception_ptr error = test_error_;
  for (smp_request_t r : requests_) {
    const smp_status_t s = smp_wait(r);  // frees r, also on failure
    if (s != SMP_SUCCESS && !error) error = smp_error(op_.c_str(), s);
  }
  requests_.clear();
  if (any_source_.valid()) {
    try {
      source_ = any_source_.get();
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (!error && then_) {
    try {
      then_();
    } catch (...) {
      error = std::current_exception();
    }
  }
  done_ = true;
  finish_with(error);
}

void SmpWork::finish_with(std::exception_ptr error) {
  finish(error);
  if (future_) {
    if (error)
      future_->setError(error);
    else
      future_->markCompleted(c10::IValue(outputs_));
  }
}

bool SmpWork::isCompleted() {
  std::unique_lock<std::mutex> lock(wait_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return false;  // another thread is waiting for it
  if (done_) return true;
  for (auto it = requests_.begin(); it != requests_.end();) {
    int done = 0;
    const smp_status_t s = smp_test(*it, &done);  // frees the request once done, or failed
    if (s != SMP_SUCCESS && !test_error_) test_error_ = smp_error(op_.c_str(), s);
    it = done ? requests_.erase(it) : it + 1;
  }
  if (!requests_.empty()) return false;
  if (any_source_.valid() &&
      any_source_.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
    return false;
  lock.unlock();
  complete();
  return true;
}

bool SmpWork::wait(std::chrono::milliseconds /*timeout: smp's watchdog ends a hung op*/) {
  complete();
  std::lock_guard<std::mutex> lock(mutex_);
  if (exception_) std::rethrow_exception(exception_);
  return true;
}

c10::intrusive_ptr<c10::ivalue::Future> SmpWork::getFuture() {
  bool completer_needed_now = false;
  {
  std::lock_guard<std::mutex> lock(wait_mutex_);
  if (!future_) {
    future_ = c10::make_intrusive<c10::ivalue::Future>(c10::ListType::create(c10::TensorType::get()));
    if (done_) {
      std::lock_guard<std::mutex> state(mutex_);
      if (exception_)
        future_->setError(exception_);
      else
        future_->markCompleted(c10::IValue(outputs_));
    } else if (auto completer = completer_.lock()) {
      completer->add(c10::intrusive_ptr<SmpWork>::unsafe_reclaim_from_nonowning(this));
    } else {
      completer_needed_now = true;  // its group is gone: complete here
    }
  }
  }
  if (completer_needed_now) complete();
  return future_;
}

// ---- ProcessGroupSmp ---------------------------------------------------

namespace {
int group_rank(smp_group_t g) {
  int r = -1;
  check(smp_rank(g, &r), "rank");
  return r;
}
int group_size(smp_group_t g) {
  int n = 0;
  check(smp_size(g, &n), "size");
  return n;
}
}  // namespace

ProcessGroupSmp::ProcessGroupSmp(smp_group_t group, bool owned)
    : c10d::ProcessGroup(group_rank(group), group_size(group)),
      group_(group),
      owned_(owned),
      completer_(std::make_shared<Completer>()) {}

ProcessGroupSmp::~ProcessGroupSmp() {
  completer_.reset();  // completes the works it was given first
  if (owned_) smp_group_destroy(group_);
}

c10::intrusive_ptr<SmpWork> ProcessGroupSmp::done(OpType type, const char *op,
                                                  std::vector<at::Tensor> outputs) {
  return c10::make_intrusive<SmpWork>(rank_, type, op, std::vector<smp_request_t>{},
                                      std::move(outputs), nullptr, completer_);
}

c10::intrusive_ptr<SmpWork> ProcessGroupSmp::in_flight(OpType type, const char *op,
                                                       std::vector<smp_request_t> requests,
                                                       std::vector<at::Tensor> outputs,
                                                       std::function<void()> then) {
  return c10::make_intrusive<SmpWork>(rank_, type, op, std::move(requests), std::move(outputs),
                                      std::move(then), completer_);
}

WorkPtr ProcessGroupSmp::broadcast(std::vector<at::Tensor> &tensors,
                                   const c10d::BroadcastOptions &opts) {
  const char *op = "broadcast";
  std::function<void()> back;
  at::Tensor t = dense(one(tensors, op), &back);
  const Bytes b = bytes(t);
  check(smp_broadcast(b.ptr, b.count, SMP_UINT8, static_cast<int>(opts.rootRank), group_, nullptr),
        op);
  if (back) back();
  return done(OpType::BROADCAST, op, tensors);
}

WorkPtr ProcessGroupSmp::allreduce(std::vector<at::Tensor> &tensors,
                                   const c10d::AllreduceOptions &opts) {
  const char *op = "allreduce";
  std::function<void()> back;
  at::Tensor t = dense(one(tensors, op), &back);
  const Elements e = elements(t, opts.reduceOp, op);
  return in_flight(OpType::ALLREDUCE, op, allreduce_op(e, group_, op), tensors,
                   [t, back] { if (back) back(); });  // t stays alive until done
}

WorkPtr ProcessGroupSmp::allreduce_coalesced(std::vector<at::Tensor> &tensors,
                                             const c10d::AllreduceCoalescedOptions &opts) {
  const char *op = "allreduce_coalesced";
  if (tensors.empty()) return done(OpType::ALLREDUCE_COALESCED, op, tensors);
  for (const auto &t : tensors)
    if (t.scalar_type() != tensors[0].scalar_type())
      fail(op, "every tensor must have the same dtype");
  std::vector<at::Tensor> parts;
  for (const auto &t : tensors) parts.push_back(t.contiguous().view({-1}));
  at::Tensor flat = at::cat(parts);
  const Elements e = elements(flat, opts.reduceOp, op);
  std::vector<at::Tensor> outs = tensors;
  return in_flight(OpType::ALLREDUCE_COALESCED, op, allreduce_op(e, group_, op), tensors, [flat, outs]() mutable {
    int64_t off = 0;
    for (auto &t : outs) {
      t.copy_(flat.narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  });
}

WorkPtr ProcessGroupSmp::reduce(std::vector<at::Tensor> &tensors, const c10d::ReduceOptions &opts) {
  const char *op = "reduce";
  std::function<void()> back;
  at::Tensor t = dense(one(tensors, op), &back);
  const Elements e = elements(t, opts.reduceOp, op);
  const int root = static_cast<int>(opts.rootRank);
  check(smp_reduce(e.ptr, root == rank_ ? e.ptr : nullptr, e.count, e.dtype, e.op, root, group_,
                   nullptr),
        op);
  if (back && root == rank_) back();
  return done(OpType::REDUCE, op, tensors);
}

WorkPtr ProcessGroupSmp::_allgather_base(at::Tensor &output, at::Tensor &input,
                                         const c10d::AllgatherOptions &) {
  const char *op = "_allgather_base";
  if (output.scalar_type() != input.scalar_type() || output.numel() != input.numel() * size_)
    fail(op, "the output must have the input's dtype and group size (" + std::to_string(size_) +
                 ") times its elements");
  std::function<void()> back;
  at::Tensor out = dense(output, &back);
  at::Tensor in = input.contiguous();
  const Bytes b = bytes(in);
  return in_flight(OpType::_ALLGATHER_BASE, op,
                   allgather_op(b.ptr, out.data_ptr(), b.count, group_, op), {output},
                   [in, out, back] { if (back) back(); });
}

WorkPtr ProcessGroupSmp::allgather(std::vector<std::vector<at::Tensor>> &outputs,
                                   std::vector<at::Tensor> &inputs,
                                   const c10d::AllgatherOptions &) {
  const char *op = "allgather";
  const at::Tensor in = one(inputs, op).contiguous();
  if (outputs.size() != 1 || outputs[0].size() != static_cast<size_t>(size_))
    fail(op, "needs one output list of group size (" + std::to_string(size_) + ") tensors");
  for (const auto &o : outputs[0]) same_shape(o, in, op, "outputs");
  at::Tensor flat = at::empty({in.numel() * in.element_size() * size_}, at::kByte);
  const Bytes b = bytes(in);
  auto requests = allgather_op(b.ptr, flat.data_ptr(), b.count, group_, op);
  std::vector<at::Tensor> outs = outputs[0];
  return in_flight(OpType::ALLGATHER, op, std::move(requests), outs,
                   [in, flat, outs]() mutable { unflatten_bytes(flat, outs); });
}

WorkPtr ProcessGroupSmp::allgather_coalesced(std::vector<std::vector<at::Tensor>> &outputs,
                                             std::vector<at::Tensor> &inputs,
                                             const c10d::AllgatherOptions &) {
  const char *op = "allgather_coalesced";
  if (outputs.size() != static_cast<size_t>(size_))
    fail(op, "needs one output list per rank of the group (" + std::to_string(size_) + ")");
  for (const auto &list : outputs) {
    if (list.size() != inputs.size()) fail(op, "every output list must match the input list");
    for (size_t i = 0; i < list.size(); ++i) same_shape(list[i], inputs[i], op, "outputs");
  }
  at::Tensor in = flat_bytes(inputs);
  at::Tensor flat = at::empty({in.numel() * size_}, at::kByte);
  auto requests =
      allgather_op(in.data_ptr(), flat.data_ptr(), static_cast<size_t>(in.numel()), group_, op);
  std::vector<at::Tensor> outs;
  for (const auto &list : outputs) outs.insert(outs.end(), list.begin(), list.end());
  return in_flight(OpType::ALLGATHER_COALESCED, op, std::move(requests), outs,
                   [in, flat, outs]() mutable { unflatten_bytes(flat, outs); });
}

WorkPtr ProcessGroupSmp::gather(std::vector<std::vector<at::Tensor>> &outputs,
                                std::vector<at::Tensor> &inputs, const c10d::GatherOptions &opts) {
  const char *op = "gather";
  const at::Tensor in = one(inputs, op).contiguous();
  const int root = static_cast<int>(opts.rootRank);
  const Bytes b = bytes(in);
  if (rank_ != root) {
    check(smp_gatherv(b.ptr, b.count, nullptr, nullptr, SMP_UINT8, root, group_, nullptr), op);
    return done(OpType::GATHER, op, {});
  }
  if (outputs.size() != 1 || outputs[0].size() != static_cast<size_t>(size_))
    fail(op, "needs, on the root, one output list of group size (" + std::to_string(size_) +
                 ") tensors");
  for (const auto &o : outputs[0]) same_shape(o, in, op, "outputs");
  at::Tensor flat = at::empty({static_cast<int64_t>(b.count) * size_}, at::kByte);
  std::vector<size_t> counts(static_cast<size_t>(size_), b.count);
  check(smp_gatherv(b.ptr, b.count, flat.data_ptr(), counts.data(), SMP_UINT8, root, group_,
                    nullptr),
        op);
  unflatten_bytes(flat, outputs[0]);
  return done(OpType::GATHER, op, outputs[0]);
}

WorkPtr ProcessGroupSmp::scatter(std::vector<at::Tensor> &outputs,
                                 std::vector<std::vector<at::Tensor>> &inputs,
                                 const c10d::ScatterOptions &opts) {
  const char *op = "scatter";
  std::function<void()> back;
  at::Tensor out = dense(one(outputs, op), &back);
  const int root = static_cast<int>(opts.rootRank);
  const Bytes b = bytes(out);
  at::Tensor flat;
  std::vector<size_t> counts;
  if (rank_ == root) {
    if (inputs.size() != 1 || inputs[0].size() != static_cast<size_t>(size_))
      fail(op, "needs, on the root, one input list of group size (" + std::to_string(size_) +
                   ") tensors");
    for (const auto &i : inputs[0]) same_shape(i, out, op, "inputs");
    flat = flat_bytes(inputs[0]);
    counts.assign(static_cast<size_t>(size_), b.count);
  }
  check(smp_scatterv(rank_ == root ? flat.data_ptr() : nullptr,
                     rank_ == root ? counts.data() : nullptr, b.ptr, b.count, SMP_UINT8, root,
                     group_, nullptr),
        op);
  if (back) back();
  return done(OpType::SCATTER, op, outputs);
}

WorkPtr ProcessGroupSmp::_reduce_scatter_base(at::Tensor &output, at::Tensor &input,
                                              const c10d::ReduceScatterOptions &opts) {
  const char *op = "_reduce_scatter_base";
  if (output.scalar_type() != input.scalar_type() || input.numel() != output.numel() * size_)
    fail(op, "the input must have the output's dtype and group size (" + std::to_string(size_) +
                 ") times its elements");
  std::function<void()> back;
  at::Tensor out = dense(output, &back);
  at::Tensor in = input.contiguous();
  const Elements e = elements(out, opts.reduceOp, op);
  auto requests = reduce_scatter_op(in.data_ptr(), e, group_, op);
  return in_flight(OpType::_REDUCE_SCATTER_BASE, op, std::move(requests), {output},
                   [in, out, back] { if (back) back(); });
}

WorkPtr ProcessGroupSmp::reduce_scatter(std::vector<at::Tensor> &outputs,
                                        std::vector<std::vector<at::Tensor>> &inputs,
                                        const c10d::ReduceScatterOptions &opts) {
  const char *op = "reduce_scatter";
  std::function<void()> back;
  at::Tensor out = dense(one(outputs, op), &back);
  if (inputs.size() != 1 || inputs[0].size() != static_cast<size_t>(size_))
    fail(op, "needs one input list of group size (" + std::to_string(size_) + ") tensors");
  for (const auto &i : inputs[0]) same_shape(i, out, op, "inputs");
  std::vector<at::Tensor> parts;
  for (const auto &i : inputs[0]) parts.push_back(i.contiguous().view({-1}));
  at::Tensor in = at::cat(parts);
  const Elements e = elements(out, opts.reduceOp, op);
  auto requests = reduce_scatter_op(in.data_ptr(), e, group_, op);
  return in_flight(OpType::REDUCE_SCATTER, op, std::move(requests), outputs,
                   [in, out, back] { if (back) back(); });
}

WorkPtr ProcessGroupSmp::alltoall_base(at::Tensor &output, at::Tensor &input,
                                       std::vector<int64_t> &output_splits,
                                       std::vector<int64_t> &input_splits,
                                       const c10d::AllToAllOptions &) {
  const char *op = "alltoall_base";
  if (output.scalar_type() != input.scalar_type()) fail(op, "input and output dtypes differ");
  // Splits count rows (the first dimension); none given: equal parts.
  auto counts = [&](const at::Tensor &t, const std::vector<int64_t> &splits, const char *what) {
    std::vector<size_t> c(static_cast<size_t>(size_));
    const int64_t rows = t.dim() == 0 ? 1 : t.size(0);
    const size_t row_bytes = rows == 0 ? 0 : t.numel() * t.element_size() / rows;
    if (splits.empty()) {
      if (rows % size_ != 0)
        fail(op, std::string(what) + "'s first dimension (" + std::to_string(rows) +
                     ") is not divisible by the group size " + std::to_string(size_));
      for (auto &x : c) x = static_cast<size_t>(rows / size_) * row_bytes;
    } else {
      if (splits.size() != static_cast<size_t>(size_))
        fail(op, std::string(what) + " splits need one entry per rank of the group");
      if (std::accumulate(splits.begin(), splits.end(), int64_t{0}) != rows)
        fail(op, std::string(what) + " splits do not add up to its first dimension");
      for (size_t r = 0; r < c.size(); ++r) c[r] = static_cast<size_t>(splits[r]) * row_bytes;
    }
    return c;
  };
  std::vector<size_t> sc = counts(input, input_splits, "input");
  std::vector<size_t> rc = counts(output, output_splits, "output");
  std::vector<size_t> sd(sc.size()), rd(rc.size());
  std::exclusive_scan(sc.begin(), sc.end(), sd.begin(), size_t{0});
  std::exclusive_scan(rc.begin(), rc.end(), rd.begin(), size_t{0});
  std::function<void()> back;
  at::Tensor out = dense(output, &back);
  at::Tensor in = input.contiguous();
  check(smp_alltoallv(in.data_ptr(), sc.data(), sd.data(), out.data_ptr(), rc.data(), rd.data(),
                      SMP_UINT8, group_, nullptr),
        op);
  if (back) back();
  return done(OpType::ALLTOALL_BASE, op, {output});
}

WorkPtr ProcessGroupSmp::alltoall(std::vector<at::Tensor> &outputs,
                                  std::vector<at::Tensor> &inputs,
                                  const c10d::AllToAllOptions &) {
  const char *op = "alltoall";
  if (outputs.size() != static_cast<size_t>(size_) || inputs.size() != outputs.size())
    fail(op, "needs group size (" + std::to_string(size_) + ") input and output tensors");
  std::vector<size_t> sc, rc;
  for (const auto &t : inputs) sc.push_back(bytes(t).count);
  for (const auto &t : outputs) rc.push_back(bytes(t).count);
  std::vector<size_t> sd(sc.size()), rd(rc.size());
  std::exclusive_scan(sc.begin(), sc.end(), sd.begin(), size_t{0});
  std::exclusive_scan(rc.begin(), rc.end(), rd.begin(), size_t{0});
  at::Tensor in = flat_bytes(inputs);
  at::Tensor flat = at::empty({static_cast<int64_t>(rd.back() + rc.back())}, at::kByte);
  check(smp_alltoallv(in.data_ptr(), sc.data(), sd.data(), flat.data_ptr(), rc.data(), rd.data(),
                      SMP_UINT8, group_, nullptr),
        op);
  unflatten_bytes(flat, outputs);
  return done(OpType::ALLTOALL, op, outputs);
}

WorkPtr ProcessGroupSmp::send(std::vector<at::Tensor> &tensors, int dst, int tag) {
  const char *op = "send";
  at::Tensor t = one(tensors, op).contiguous();
  const Bytes b = bytes(t);
  smp_request_t req = nullptr;
  check(smp_isend(b.ptr, b.count, SMP_UINT8, dst, group_, tag, nullptr, &req), op);
  return in_flight(OpType::SEND, op, {req}, tensors, [t] {});
}

WorkPtr ProcessGroupSmp::recv(std::vector<at::Tensor> &tensors, int src, int tag) {
  const char *op = "recv";
  std::function<void()> back;
  at::Tensor t = dense(one(tensors, op), &back);
  const Bytes b = bytes(t);
  smp_request_t req = nullptr;
  check(smp_irecv(b.ptr, b.count, SMP_UINT8, src, group_, tag, nullptr, &req), op);
  auto work = in_flight(OpType::RECV, op, {req}, tensors, [t, back] { if (back) back(); });
  work->set_source(src);
  return work;
}

WorkPtr ProcessGroupSmp::recvAnysource(std::vector<at::Tensor> &tensors, int tag) {
  const char *op = "recvAnysource";
  std::function<void()> back;
  at::Tensor t = dense(one(tensors, op), &back);
  const Bytes b = bytes(t);
  const smp_group_t g = group_;
  // smp_recv_any blocks; run it beside the caller, as irecv would.
  std::future<int> source = std::async(std::launch::async, [t, b, g, tag, back, op] {
    int src = -1;
    check(smp_recv_any(b.ptr, b.count, SMP_UINT8, g, tag, &src, nullptr), op);
    if (back) back();
    return src;
  });
  return c10::make_intrusive<SmpWork>(rank_, op, std::move(source), tensors, completer_);
}

WorkPtr ProcessGroupSmp::barrier(const c10d::BarrierOptions &) {
  check(smp_barrier(group_), "barrier");
  return done(OpType::BARRIER, "barrier", {});
}

}  // namespace smp_torch
