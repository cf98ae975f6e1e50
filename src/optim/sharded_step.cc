// The sharded step (see sharded_optimizer.h), one code path for every
// memory: each action goes through DeviceOps (device_ops.h: CUDA, or host
// memory with memcpy and the CPU kernels). Per step, in stream order:
// gradients packed into the flat bucket buffer, one non-blocking
// reduce-scatter per bucket, [the sums of squares of this rank's pieces,
// read back once], the fused kernel per bucket writing the new parameters
// into a shard-sized buffer, the allgathers from it into the flat buffer,
// and copies out to the model's tensors. The collectives take the
// optimizer's stream, so comm's device backends (NCCL enqueues, the staged
// backend stages on it) keep the same order. A group of one rank runs no
// collective: its reduce-scatter and allgather are the identity, so the
// update writes the new parameters where the copy-out reads them (two full
// copies fewer per step).
#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "optim/sharded_optimizer.h"

namespace smp::optim {

namespace {
// Floats between one state's end and the next one's start (256 bytes: the
// alignment stays 64). Without it the states of a power-of-two shard sit a
// multiple of 4 KiB apart, and the update's streams (master, exp_avg,
// exp_avg_sq) contend for the same cache sets: 10-15% of the host step.
constexpr size_t kStateStagger = 64;
}  // namespace

// The step's allocations (in the ops' memory), freed after its stream has
// drained (work enqueued by the last call may still read them).
struct ShardedOptimizer::Buffers {
  DeviceOps *ops = nullptr;
  void *stream = nullptr;    // the last one work was enqueued on
  float *states = nullptr;   // state_names().size() states, `stride` floats apart
  size_t stride = 0;         // shard_elems + kStateStagger
  char *flat = nullptr;      // layout().flat_bytes(): every bucket, typed
  char *params = nullptr;    // this rank's new parameters, bucket by bucket, typed (unless in_place)
  double *sums = nullptr;    // one sum of squares per piece
  double *scratch = nullptr;  // ops->sum_squares_scratch() doubles
  std::vector<size_t> param_offset;  // bytes into params, per bucket
  // ops->update_in_place(): the new parameters overwrite the reduced
  // gradients in flat, and the allgathers run in place (on the host this
  // saves a cache-cold stream of writes: BENCHMARKS.md, "Sharded optimizer").
  bool in_place = false;
};

char *ShardedOptimizer::new_params(size_t b) {
  Buffers &d = *bufs_;
  const Bucket &bk = layout_.buckets()[b];
  if (!d.in_place) return d.params + d.param_offset[b];
  return d.flat + bk.byte_offset +
         static_cast<size_t>(group_.rank()) * bk.slice(layout_.group_size()) * dtype_size(bk.dtype);
}

void ShardedOptimizer::BuffersDelete::operator()(Buffers *d) const noexcept {
  if (d == nullptr) return;
  d->ops->synchronize_quietly(d->stream);
  for (void *p : {static_cast<void *>(d->states), static_cast<void *>(d->flat),
                  static_cast<void *>(d->params), static_cast<void *>(d->sums),
                  static_cast<void *>(d->scratch)})
    if (p) d->ops->free(p);
  delete d;
}

void ShardedOptimizer::init_buffers() {
  DeviceOps &ops = *ops_;
  bufs_.reset(new Buffers);
  Buffers &d = *bufs_;
  d.ops = &ops;
  d.stream = stream_;
  const size_t shard = layout_.shard_elems();
  const int n = layout_.group_size();
  size_t param_bytes = 0;
  for (const Bucket &bk : layout_.buckets()) {
    d.param_offset.push_back(param_bytes);
    param_bytes += bk.slice(n) * dtype_size(bk.dtype);
  }
  d.stride = shard + kStateStagger;
  d.states = static_cast<float *>(ops.alloc(state_names_.size() * d.stride * sizeof(float)));
  d.flat = static_cast<char *>(ops.alloc(layout_.flat_bytes()));
  d.in_place = ops.update_in_place();
  if (!d.in_place) d.params = static_cast<char *>(ops.alloc(param_bytes));
  d.sums = static_cast<double *>(ops.alloc(std::max<size_t>(1, my_pieces_.size()) * sizeof(double)));
  d.scratch = static_cast<double *>(ops.alloc(ops.sum_squares_scratch() * sizeof(double)));

  // Zero state (padding stays zero), then this rank's pieces of the
  // parameters as float32 masters.
  ops.zero(d.states, state_names_.size() * d.stride * sizeof(float), stream_);
  for (const Piece &p : my_pieces_) {
    const TensorBinding &t = tensors_[p.tensor];
    const char *src = static_cast<const char *>(t.param) + p.tensor_offset * dtype_size(t.spec.dtype);
    ops.to_float(src, t.spec.dtype, d.states + p.shard_offset, p.length, stream_);
  }
  // Complete on return, as on the host: the caller may change the
  // parameters on any stream afterwards.
  ops.synchronize(stream_);
}

float *ShardedOptimizer::state_buffer(size_t index) { return bufs_->states + index * bufs_->stride; }

void ShardedOptimizer::copy_state(size_t index, float *out, const float *in) {
  DeviceOps &ops = *ops_;
  bufs_->stream = stream_;
  const size_t shard = layout_.shard_elems();
  float *dev = state_buffer(index);
  if (out) ops.copy(out, dev, shard * sizeof(float), stream_);
  if (in) ops.copy(dev, in, shard * sizeof(float), stream_);
  ops.synchronize(stream_);
}

StepResult ShardedOptimizer::step(double grad_scale) {
  if (!(std::isfinite(grad_scale) && grad_scale > 0))
    invalid("optimizer step: grad_scale must be finite and > 0");
  DeviceOps &ops = *ops_;
  Buffers &d = *bufs_;
  d.stream = stream_;
  const size_t nb = layout_.buckets().size();
  const int n = layout_.group_size();
  std::vector<comm::RequestPtr> rs(nb), ag(nb);

  // 1. Pack each bucket (padding zeroed) and start its reduce-scatter.
  for (size_t b = 0; b < nb; ++b) {
    const Bucket &bk = layout_.buckets()[b];
    const size_t ds = dtype_size(bk.dtype);
    char *base = d.flat + bk.byte_offset;
    for (size_t i : bk.tensors) {
      const TensorBinding &t = tensors_[i];
      ops.copy(base + (layout_.tensor_flat_offset(i) - bk.flat_offset) * ds, t.grad,
               t.spec.count * ds, stream_);
    }
    ops.zero(base + bk.used * ds, (bk.elems - bk.used) * ds, stream_);
    if (n > 1)
      rs[b] = group_.ireduce_scatter(base, base + static_cast<size_t>(group_.rank()) * bk.slice(n) * ds,
                                   bk.slice(n), bk.dtype, comm::ReduceOp::Avg, stream_);
  }

  // 2. The norm: a sum of squares per piece, read back once, summed on the
  //    host per bucket, then over buckets.
  StepResult result;
  double mult = grad_scale;
  if (config_.max_grad_norm > 0 || config_.check_finite) {
    for (size_t b = 0; b < nb; ++b) {
      const Bucket &bk = layout_.buckets()[b];
      const size_t ds = dtype_size(bk.dtype);
      if (rs[b]) rs[b]->wait();
      for (size_t k : pieces_by_bucket_[b]) {
        const Piece &p = my_pieces_[k];
        ops.sum_squares(d.flat + bk.byte_offset + (p.flat_offset - bk.flat_offset) * ds, bk.dtype,
                        p.length, d.sums + k, d.scratch, stream_);
      }
    }
    std::vector<double> sums(my_pieces_.size());
    ops.copy(sums.data(), d.sums, sums.size() * sizeof(double), stream_);
    ops.synchronize(stream_);
    double acc[2] = {0, 0};
    for (size_t b = 0; b < nb; ++b) {
      double part = 0;
      for (size_t k : pieces_by_bucket_[b]) {
        if (!std::isfinite(sums[k])) acc[1] = 1;
        if (tensors_[my_pieces_[k].tensor].in_norm) part += sums[k];
      }
      acc[0] += part;
    }
    group_.allreduce(acc, acc, 2, DType::F64, comm::ReduceOp::Sum);
    for (comm::Communicator *g : norm_groups_) g->allreduce(acc, acc, 2, DType::F64, comm::ReduceOp::Sum);
    if (!decide(acc, grad_scale, result, mult)) return result;
  }

  // 3. Update each bucket's slice as its reduce-scatter lands, allgather
  //    the new parameters into the flat buffer.
  float *master = d.states;
  for (size_t b = 0; b < nb; ++b) {
    const Bucket &bk = layout_.buckets()[b];
    const size_t ds = dtype_size(bk.dtype);
    const size_t len = bk.slice(n);
    if (rs[b]) rs[b]->wait();
    const char *g = d.flat + bk.byte_offset + static_cast<size_t>(group_.rank()) * len * ds;
    char *out = new_params(b);
    const size_t so = bk.shard_offset;
    if (config_.kind == Kind::AdamW) {
      AdamWHyper h = config_.adamw;
      h.step = step_ + 1;
      ops.adamw_update(master + so, master + d.stride + so, master + 2 * d.stride + so, g, out,
                       bk.dtype, len, static_cast<float>(mult), h, stream_);
    } else {
      SgdHyper h = config_.sgd;
      h.step = step_ + 1;
      float *mom = state_names_.size() > 1 ? master + d.stride + so : nullptr;
      ops.sgd_update(master + so, mom, g, out, bk.dtype, len, static_cast<float>(mult), h, stream_);
    }
    if (n > 1) ag[b] = group_.iallgather(out, d.flat + bk.byte_offset, len, bk.dtype, stream_);
  }

  // 4. Copy the gathered parameters out to the model's tensors.
  copy_out(ag);
  ++step_;
  return result;
}

// From the gathered flat buffer, or with one rank (no allgather) from the
// update's output, whose bucket layout is the flat buffer's (it is the flat
// buffer when the update runs in place).
void ShardedOptimizer::copy_out(std::vector<comm::RequestPtr> &allgathers) {
  Buffers &d = *bufs_;
  const bool alone = layout_.group_size() == 1;
  for (size_t b = 0; b < allgathers.size(); ++b) {
    const Bucket &bk = layout_.buckets()[b];
    const size_t ds = dtype_size(bk.dtype);
    if (allgathers[b]) allgathers[b]->wait();
    const char *base = alone && !d.in_place ? d.params + d.param_offset[b] : d.flat + bk.byte_offset;
    for (size_t i : bk.tensors) {
      const TensorBinding &t = tensors_[i];
      ops_->copy(t.param, base + (layout_.tensor_flat_offset(i) - bk.flat_offset) * ds, t.spec.count * ds,
                 stream_);
    }
  }
}

void ShardedOptimizer::gather_params() {
  DeviceOps &ops = *ops_;
  Buffers &d = *bufs_;
  d.stream = stream_;
  const size_t nb = layout_.buckets().size();
  const int n = layout_.group_size();
  std::vector<comm::RequestPtr> ag(nb);
  for (size_t b = 0; b < nb; ++b) {
    const Bucket &bk = layout_.buckets()[b];
    char *out = new_params(b);
    ops.from_float(d.states + bk.shard_offset, out, bk.dtype, bk.slice(n), stream_);
    if (n > 1) ag[b] = group_.iallgather(out, d.flat + bk.byte_offset, bk.slice(n), bk.dtype, stream_);
  }
  copy_out(ag);
}

}  // namespace smp::optim
