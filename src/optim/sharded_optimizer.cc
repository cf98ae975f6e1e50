#include "optim/sharded_optimizer.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/hash.h"
#if SMP_HAVE_CUDA
#include "cuda/runtime.h"
#endif

namespace smp::optim {

namespace {

std::vector<TensorSpec> specs_of(const std::vector<TensorBinding> &t) {
  std::vector<TensorSpec> s;
  s.reserve(t.size());
  for (const TensorBinding &b : t) s.push_back(b.spec);
  return s;
}

uint64_t settings_hash(const OptimizerConfig &c) {
  return Fnv1a()
      .word(static_cast<uint64_t>(c.kind))
      .word(c.bucket_cap_bytes)
      .word(c.align_bytes)
      .word(c.max_grad_norm > 0)
      .word(c.check_finite)
      .word(c.kind == Kind::Sgd && c.sgd.momentum != 0)
      .h;
}

// What the norm groups must agree on: whether the norm allreduces happen.
uint64_t norm_settings_hash(const OptimizerConfig &c) {
  return (c.max_grad_norm > 0 ? 1u : 0u) | (c.check_finite ? 2u : 0u);
}

void check_config(const OptimizerConfig &c) {
  auto finite_ge0 = [](double v) { return std::isfinite(v) && v >= 0; };
  if (c.kind != Kind::AdamW && c.kind != Kind::Sgd)
    invalid("optimizer: kind must be AdamW or SGD");
  if (c.kind == Kind::AdamW) {
    const AdamWHyper &h = c.adamw;
    if (!finite_ge0(h.lr)) invalid("optimizer: AdamW lr must be finite and >= 0");
    if (!(h.beta1 >= 0 && h.beta1 < 1)) invalid("optimizer: AdamW beta1 must be in [0, 1)");
    if (!(h.beta2 >= 0 && h.beta2 < 1)) invalid("optimizer: AdamW beta2 must be in [0, 1)");
    if (!(std::isfinite(h.eps) && h.eps > 0)) invalid("optimizer: AdamW eps must be > 0");
    if (!finite_ge0(h.weight_decay)) invalid("optimizer: AdamW weight_decay must be >= 0");
  } else {
    const SgdHyper &h = c.sgd;
    if (!finite_ge0(h.lr)) invalid("optimizer: SGD lr must be finite and >= 0");
    if (!finite_ge0(h.momentum)) invalid("optimizer: SGD momentum must be >= 0");
    if (!finite_ge0(h.dampening)) invalid("optimizer: SGD dampening must be >= 0");
    if (!finite_ge0(h.weight_decay)) invalid("optimizer: SGD weight_decay must be >= 0");
    if (h.nesterov && (h.momentum <= 0 || h.dampening != 0))
      invalid("optimizer: SGD nesterov needs momentum > 0 and dampening = 0 (as torch)");
  }
  if (!(std::isfinite(c.max_grad_norm) && c.max_grad_norm >= 0))
    invalid("optimizer: max_grad_norm must be >= 0 (0 = no clipping)");
}

}  // namespace

// The CUDA device holding p, -1 for host memory (always -1 without CUDA,
// where device pointers cannot occur).
int device_of(const void *p) {
#if SMP_HAVE_CUDA
  return cuda::device_of(p);
#else
  (void)p;
  return -1;
#endif
}

ShardLayout ShardedOptimizer::build_layout(comm::Communicator &group,
                                           const std::vector<comm::Communicator *> &norm_groups,
                                           const std::vector<TensorBinding> &tensors,
                                           const OptimizerConfig &config,
                                           const std::string &caller_error, Placement *placement) {
  // Validate locally, but decide together: a rank that throws before the
  // collectives below would leave its peers waiting in them.
  std::string local_error;
  std::unique_ptr<ShardLayout> layout;
  try {
    if (!caller_error.empty()) invalid(caller_error);
    check_config(config);
    for (size_t i = 0; i < tensors.size(); ++i) {
      const TensorBinding &t = tensors[i];
      if (t.spec.count > 0 && (t.param == nullptr || t.grad == nullptr))
        invalid("optimizer: tensor #" + std::to_string(i) + " ('" + t.spec.name + "') has " +
                std::to_string(t.spec.count) + " elements but a NULL " +
                (t.param == nullptr ? "parameter" : "gradient") + " pointer");
    }
    for (const comm::Communicator *g : norm_groups)
      if (g == nullptr) invalid("optimizer: a norm group is NULL");
    *placement = place_tensors(tensors, device_of);
    layout = std::make_unique<ShardLayout>(specs_of(tensors), group.size(),
                                           config.bucket_cap_bytes, config.align_bytes);
  } catch (const Error &e) {
    if (e.status() != Status::InvalidArgument) throw;
    local_error = e.what();
  }
  // Host and CUDA ranks in one group would mix backends (NCCL on one side,
  // MPI on the other): the memory kind is a setting every rank must share.
  uint64_t sh = settings_hash(config);
  if (placement->memory == Memory::Cuda) sh = Fnv1a{sh}.word(0x43554441u).h;
  std::string error =
      compare_tensor_lists(group, specs_of(tensors), sh, local_error.empty());
  // The norm groups take part in the same decision (their other members
  // run the same constructor for their own sharding groups).
  for (comm::Communicator *g : norm_groups) {
    if (g == nullptr) continue;  // only when local_error is set: all ranks already fail
    const uint64_t nh = norm_settings_hash(config);
    const uint64_t mine[2] = {error.empty() ? 1u : 0u, nh};
    std::vector<uint64_t> all(2 * static_cast<size_t>(g->size()));
    g->allgather(mine, all.data(), 2, DType::I64);
    for (int r = 0; r < g->size() && error.empty(); ++r) {
      if (all[2 * r] == 0)
        error = std::string("optimizer: rank ") + std::to_string(r) + " of " + g->group_name() +
                " (a norm group) failed to create its optimizer";
      else if (all[2 * r + 1] != nh)
        error = std::string("optimizer: ranks of ") + g->group_name() +
                " (a norm group) use different optimizer settings; clipping and the finite "
                "check must agree or their collectives would not match";
    }
  }
  if (!local_error.empty()) invalid(local_error);
  if (!error.empty()) invalid(error);
  return std::move(*layout);
}

ShardedOptimizer::ShardedOptimizer(comm::Communicator &group,
                                   std::vector<comm::Communicator *> norm_groups,
                                   std::vector<TensorBinding> tensors,
                                   const OptimizerConfig &config,
                                   const std::string &caller_error,
                                   std::unique_ptr<DeviceOps> device_ops)
    : ops_(std::move(device_ops)),
      group_(group),
      norm_groups_(std::move(norm_groups)),
      tensors_(std::move(tensors)),
      config_(config),
      layout_(build_layout(group_, norm_groups_, tensors_, config_, caller_error, &placement_)) {
  my_pieces_ = layout_.pieces(group_.rank());
  pieces_by_bucket_.resize(layout_.buckets().size());
  for (size_t i = 0; i < my_pieces_.size(); ++i) pieces_by_bucket_[my_pieces_[i].bucket].push_back(i);

  state_names_ = {"master"};
  if (config_.kind == Kind::AdamW) {
    state_names_.push_back("exp_avg");
    state_names_.push_back("exp_avg_sq");
  } else if (config_.sgd.momentum != 0) {
    state_names_.push_back("momentum_buffer");
  }
#if SMP_HAVE_CUDA
  if (!ops_ && placement_.memory == Memory::Cuda) ops_ = make_cuda_ops(placement_.device);
#endif
  if (!ops_) ops_ = make_host_ops();
  init_buffers();
}

ShardedOptimizer::~ShardedOptimizer() = default;

void ShardedOptimizer::set_step_count(int64_t s) {
  if (s < 0) invalid("optimizer: step count must be >= 0");
  step_ = s;
}

void ShardedOptimizer::set_lr(double lr) {
  if (!(std::isfinite(lr) && lr >= 0)) invalid("optimizer: lr must be finite and >= 0");
  (config_.kind == Kind::AdamW ? config_.adamw.lr : config_.sgd.lr) = lr;
}

size_t ShardedOptimizer::state_index(const std::string &name) const {
  for (size_t i = 0; i < state_names_.size(); ++i)
    if (state_names_[i] == name) return i;
  std::string known;
  for (const std::string &s : state_names_) known += (known.empty() ? "" : ", ") + s;
  invalid("optimizer: no state '" + name + "' (this optimizer has: " + known + ")");
}

float *ShardedOptimizer::state(const std::string &name) {
  const size_t i = state_index(name);
  if (!ops_->host_memory())
    invalid("optimizer: state '" + name + "' is in " + ops_->name() +
            " device memory; copy it with export_state / import_state");
  return state_buffer(i);
}

void ShardedOptimizer::export_state(const std::string &name, float *out) {
  copy_state(state_index(name), out, nullptr);
}

void ShardedOptimizer::import_state(const std::string &name, const float *in) {
  copy_state(state_index(name), nullptr, in);
}

const float *ShardedOptimizer::state(const std::string &name) const {
  return const_cast<ShardedOptimizer *>(this)->state(name);
}

size_t ShardedOptimizer::state_bytes() const {
  return state_names_.size() * layout_.shard_elems() * sizeof(float);
}

bool ShardedOptimizer::decide(const double acc[2], double grad_scale, StepResult &result,
                              double &mult) const {
  const double norm = std::sqrt(acc[0]) * grad_scale;
  result.grad_norm = norm;
  if (acc[1] > 0 || !std::isfinite(norm)) {
    if (config_.check_finite) {
      result.skipped = true;
      return false;
    }
  } else if (config_.max_grad_norm > 0) {
    // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), at most 1.
    result.clip_coef = std::min(1.0, config_.max_grad_norm / (norm + 1e-6));
    mult *= result.clip_coef;
  }
  return true;
}

}  // namespace smp::optim
