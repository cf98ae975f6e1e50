// The ZeRO-1 step: every rank of a group holds the same parameters and
// gradients' shapes, keeps only its shard of the float32 optimizer state,
// and per step
//   1. packs its gradients into typed buckets and reduce-scatters them
//      (average) bucket by bucket, non-blocking;
//   2. optionally sums the squared norm of its reduced shard over the group
//      and the norm groups (clipping, inf/NaN check), so every rank takes
//      the same decision;
//   3. updates its shard with the fused kernel as soon as that bucket's
//      reduce-scatter lands (overlapping the next buckets' communication),
//      writes the new parameters into its slice and allgathers the bucket;
//   4. copies the gathered parameters back into the model's tensors.
//
// Collectives issued per step, in order, identical on every rank:
// ireduce_scatter x buckets; [allreduce over the group, then over each
// norm group, if clipping or the finite check is on]; iallgather x buckets
// (none when the step is skipped).
//
// Memory: the step runs where the tensors are (optim/placement.h), one
// code path (sharded_step.cc) over DeviceOps (device_ops.h). With host
// tensors the ops are host memory (host_ops.cc: memcpy and the CPU kernels)
// and everything above is complete when a call returns. With tensors on a
// CUDA device the shard's state lives in
// that device's memory, the collectives get device buffers (comm's device
// backends: NCCL, or the staged backend), and the packing copies, the
// norm's sums of squares and the fused update go through DeviceOps
// (device_ops.h; on CUDA: kernels.h's device twins over optim/cuda/), all
// enqueued on stream() in the order above, as comm's calls on CUDA memory
// are: a call returns once its work
// is enqueued (gradients must be ready in stream order, new parameters are
// there in stream order). Clipping and the finite check read the norm back
// to the host (every rank must take the same decision), so a step with
// either synchronizes the stream once, after the reduce-scatters.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "optim/device_ops.h"
#include "optim/kernels.h"
#include "optim/placement.h"
#include "optim/shard_layout.h"

namespace smp::optim {

enum class Kind : int { AdamW = 0, Sgd = 1 };

struct OptimizerConfig {
  Kind kind = Kind::AdamW;
  AdamWHyper adamw;                   // .step is ignored (the optimizer counts)
  SgdHyper sgd;                       // .step is ignored
  size_t bucket_cap_bytes = 25u << 20;  // as DDP's bucket_cap_mb = 25
  size_t align_bytes = 64;
  double max_grad_norm = 0;  // > 0: clip by the global L2 norm, as torch's clip_grad_norm_
  bool check_finite = false;  // skip the step on every rank if any gradient is inf/NaN
};

// TensorBinding (one model tensor): optim/placement.h.

struct StepResult {
  bool skipped = false;    // inf/NaN gradients: nothing was updated
  double grad_norm = -1;   // global L2 norm of the averaged gradients (-1: not computed)
  double clip_coef = 1;    // multiplier applied to the gradients by clipping
};

class ShardedOptimizer {
 public:
  // Collective over `group` and every norm group: checks that every rank
  // of the group registered the same tensor list and settings (throws
  // smp::Error(InvalidArgument) on all of them, naming the first difference,
  // if not), builds the layout and initializes the master shard from the
  // model's tensors. norm_groups: the groups whose ranks hold distinct
  // gradients beyond `group` (e.g. PP for a DP optimizer, MP = PP x TP for
  // an RDP one); the global norm is summed over `group`, then over each.
  // Bad local arguments are agreed on too: every rank throws (none is left
  // waiting in a collective), the one at fault with its own message.
  // caller_error: an argument error the caller (the C API) found first, to
  // be reported the same collective way. device_ops (tests): run the step
  // with these ops; by default the tensors' placement decides (CUDA ops for
  // CUDA tensors, make_host_ops() for host ones).
  ShardedOptimizer(comm::Communicator &group, std::vector<comm::Communicator *> norm_groups,
                   std::vector<TensorBinding> tensors, const OptimizerConfig &config,
                   const std::string &caller_error = "",
                   std::unique_ptr<DeviceOps> device_ops = nullptr);
  ~ShardedOptimizer();
  ShardedOptimizer(const ShardedOptimizer &) = delete;
  ShardedOptimizer &operator=(const ShardedOptimizer &) = delete;

  // One step. grad_scale multiplies every gradient first (1 / loss scale
  // under dynamic loss scaling); the norm is that of the scaled gradients.
  StepResult step(double grad_scale = 1.0);
  // Rewrites the model's tensors from the master shards (allgather): after
  // import_state, or to undo any change the program made to them.
  void gather_params();

  const ShardLayout &layout() const { return layout_; }
  // This rank's pieces (layout().pieces(rank())), in shard order.
  const std::vector<Piece> &pieces() const { return my_pieces_; }
  const OptimizerConfig &config() const { return config_; }
  // Where the tensors and the optimizer state live.
  Memory memory() const { return placement_.memory; }
  // The cudaStream_t the device work is enqueued on (NULL, the default
  // stream, until set); it must stay valid while work enqueued on it runs
  // and until the optimizer is destroyed (which drains it), or until
  // another is set. Ignored with host tensors.
  void set_stream(void *stream) { stream_ = stream; }
  void *stream() const { return stream_; }
  int rank() const { return group_.rank(); }
  int64_t step_count() const { return step_; }
  void set_step_count(int64_t s);
  void set_lr(double lr);

  // The float32 state of this rank's shard, layout().shard_elems() each:
  // "master", then "exp_avg", "exp_avg_sq" (AdamW) or "momentum_buffer"
  // (SGD with momentum). Padding elements are zero.
  const std::vector<std::string> &state_names() const { return state_names_; }
  // The state buffer itself when it is in host memory (throws
  // InvalidArgument when it is in device memory; use export_state /
  // import_state).
  float *state(const std::string &name);
  const float *state(const std::string &name) const;
  // Copies state `name` (shard_elems floats) to / from host memory `out` /
  // `in`, wherever it lives; complete when the call returns.
  void export_state(const std::string &name, float *out);
  void import_state(const std::string &name, const float *in);
  // Bytes of optimizer state held here: states x shard_elems x 4.
  size_t state_bytes() const;
  // Bytes of the typed bucket buffer gradients and parameters travel in.
  size_t buffer_bytes() const { return layout_.flat_bytes(); }

 private:
  // Also decides *placement (every rank agrees on one memory kind).
  static ShardLayout build_layout(comm::Communicator &group,
                                  const std::vector<comm::Communicator *> &norm_groups,
                                  const std::vector<TensorBinding> &tensors,
                                  const OptimizerConfig &config,
                                  const std::string &caller_error, Placement *placement);
  size_t state_index(const std::string &name) const;
  // The clipping / finite decision from the group-summed [sum of squares,
  // inf/NaN count]: false when the step is skipped.
  bool decide(const double acc[2], double grad_scale, StepResult &result, double &mult) const;
  // The step's buffers, in the ops' memory (sharded_step.cc).
  struct Buffers;
  struct BuffersDelete {
    void operator()(Buffers *d) const noexcept;
  };
  void init_buffers();
  // Waits for each bucket's allgather, then copies its tensors out to the
  // model's parameters (stream-ordered).
  void copy_out(std::vector<comm::RequestPtr> &allgathers);
  void copy_state(size_t index, float *out, const float *in);
  float *state_buffer(size_t index);  // in the ops' memory
  char *new_params(size_t bucket);    // where the update writes this rank's new parameters
  std::unique_ptr<DeviceOps> ops_;  // host memory, or the tensors' CUDA device
  std::unique_ptr<Buffers, BuffersDelete> bufs_;

  comm::Communicator &group_;
  std::vector<comm::Communicator *> norm_groups_;
  std::vector<TensorBinding> tensors_;
  OptimizerConfig config_;
  Placement placement_;  // before layout_: build_layout sets it
  void *stream_ = nullptr;
  ShardLayout layout_;
  std::vector<Piece> my_pieces_;
  std::vector<std::vector<size_t>> pieces_by_bucket_;  // indices into my_pieces_
  int64_t step_ = 0;
  std::vector<std::string> state_names_;
};

// Collective over g (one allgather, plus a broadcast and an allgather when
// the lists differ): returns "" if every rank passed local_ok, the same
// tensor list (names, counts, dtypes, order) and the same settings_hash;
// else a message, the same decision on every rank, naming the group, the
// failed ranks or the first differing tensor.
std::string compare_tensor_lists(comm::Communicator &g, const std::vector<TensorSpec> &tensors,
                                 uint64_t settings_hash, bool local_ok);

}  // namespace smp::optim
