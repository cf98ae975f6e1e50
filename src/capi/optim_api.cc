// The C API of the sharded optimizer (smp.h, "Sharded optimizer"): argument
// checks and enum conversions here, the work in smp::optim::ShardedOptimizer.
#include <cmath>
#include <cstdio>
#include <cstddef>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "capi/guard.h"
#include "optim/sharded_optimizer.h"

using smp::capi::guarded;
using smp::capi::require;

struct smp_optimizer {
  smp::comm::Context *context = nullptr;  // the world it was created in
  std::unique_ptr<smp::optim::ShardedOptimizer> opt;
  const char *group_name = nullptr;  // the sharding group's, for the timeline
};

namespace {

// A timeline event for optimizer work: its group, and the bytes of the
// bucket buffer its gradients and parameters travel in.
smp::trace::Args event_args(const smp_optimizer &h) {
  smp::trace::Args a;
  if (!smp::trace::enabled()) return a;
  a.group = h.group_name;
  a.bytes = static_cast<long long>(h.opt->buffer_bytes());
  return a;
}

// Live handles: a destroyed, foreign or garbage handle is reported, not
// dereferenced.
std::mutex g_mu;
std::set<const smp_optimizer *> g_live;

smp::optim::ShardedOptimizer &live(smp_optimizer_t h, smp::comm::Context &ctx, const char *fn) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    require(h != nullptr, std::string(fn) + ": optimizer is NULL");
    require(g_live.count(h) != 0, std::string(fn) +
                                      ": optimizer is not a live handle (destroyed, or never "
                                      "returned by smp_optimizer_create)");
  }
  require(h->context == &ctx, std::string(fn) +
                                  ": optimizer belongs to an earlier smp_init; destroy it "
                                  "before smp_finalize");
  return *h->opt;
}

constexpr size_t kConfigV1Size =
    offsetof(smp_optimizer_config_t, check_finite) + sizeof(int);

// The sharding group and the norm group from the config.
void groups_of(const smp_optimizer_config_t &c, smp::comm::Context &ctx,
               smp::comm::Communicator *&group, std::vector<smp::comm::Communicator *> &norm) {
  using smp::topo::Group;
  const Group g = smp::capi::to_group(c.group, "config->group");
  group = &ctx.group(g);
  int ng = c.norm_group;
  if (ng == SMP_NORM_GROUP_AUTO) {
    switch (g) {
      case Group::DP: ng = SMP_PP_GROUP; break;  // DP x PP = WORLD
      case Group::RDP: ng = SMP_MP_GROUP; break;  // RDP x (PP x TP) = WORLD
      case Group::World: ng = SMP_NORM_GROUP_NONE; break;
      default:
        smp::invalid(std::string("smp_optimizer_create: config->norm_group AUTO has no default for a ") +
                     group->group_name() + " optimizer; name the group or SMP_NORM_GROUP_NONE");
    }
  }
  if (ng == SMP_NORM_GROUP_NONE) return;
  if (ng < 0 || ng >= static_cast<int>(smp::topo::kAllGroups.size()))
    smp::invalid("smp_optimizer_create: config->norm_group " + std::to_string(ng) +
                 " is not an smp_group_t, SMP_NORM_GROUP_AUTO or SMP_NORM_GROUP_NONE");
  const Group n = static_cast<Group>(ng);
  if (n == g) smp::invalid("smp_optimizer_create: config->norm_group equals config->group");
  norm.push_back(&ctx.group(n));
}

smp::optim::OptimizerConfig convert(const smp_optimizer_config_t &c) {
  smp::optim::OptimizerConfig o;
  const int kind = smp::capi::raw_enum(c.kind);  // any int a C caller stored
  require(kind == SMP_ADAMW || kind == SMP_SGD,
          "smp_optimizer_create: config->kind " + std::to_string(kind) +
              " is not SMP_ADAMW or SMP_SGD");
  o.kind = kind == SMP_ADAMW ? smp::optim::Kind::AdamW : smp::optim::Kind::Sgd;
  if (o.kind == smp::optim::Kind::AdamW) {
    if (c.lr >= 0) o.adamw.lr = c.lr;
    o.adamw.beta1 = c.beta1;
    o.adamw.beta2 = c.beta2;
    o.adamw.eps = c.eps;
    o.adamw.weight_decay = c.weight_decay < 0 ? 0.01 : c.weight_decay;
  } else {
    if (c.lr >= 0) o.sgd.lr = c.lr;
    o.sgd.momentum = c.momentum;
    o.sgd.dampening = c.dampening;
    o.sgd.nesterov = c.nesterov != 0;
    o.sgd.weight_decay = c.weight_decay < 0 ? 0.0 : c.weight_decay;
    require(c.nesterov == 0 || c.nesterov == 1, "smp_optimizer_create: config->nesterov must be 0 or 1");
  }
  require(!std::isnan(c.lr), "smp_optimizer_create: config->lr is NaN");
  if (c.bucket_bytes > 0) o.bucket_cap_bytes = c.bucket_bytes;
  o.max_grad_norm = c.max_grad_norm;
  require(c.check_finite == 0 || c.check_finite == 1,
          "smp_optimizer_create: config->check_finite must be 0 or 1");
  o.check_finite = c.check_finite != 0;
  return o;
}

}  // namespace

extern "C" {

smp_status_t smp_optimizer_create(const smp_optimizer_config_t *config,
                                  const smp_optimizer_tensor_t *tensors, size_t count,
                                  smp_optimizer_t *optimizer) {
  return guarded([&](smp::comm::Context &ctx) {
    require(optimizer != nullptr, "smp_optimizer_create: optimizer (the output) is NULL");
    *optimizer = nullptr;
    require(config != nullptr, "smp_optimizer_create: config is NULL (use SMP_OPTIMIZER_CONFIG_INIT)");
    require(config->struct_size >= kConfigV1Size,
            "smp_optimizer_create: config->struct_size " + std::to_string(config->struct_size) +
                " is too small; initialize the config with SMP_OPTIMIZER_CONFIG_INIT");
    smp::comm::Communicator *group = nullptr;
    std::vector<smp::comm::Communicator *> norm;
    groups_of(*config, ctx, group, norm);
    const smp::optim::OptimizerConfig cfg = convert(*config);

    // Per-tensor problems are reported collectively by the constructor (a
    // rank failing alone would leave its peers waiting in the check).
    std::string error;
    if (tensors == nullptr && count > 0)
      error = "smp_optimizer_create: tensors is NULL but count is " + std::to_string(count);
    const int tp_rank = ctx.group(smp::topo::Group::TP).rank();
    const bool group_spans_tp = !(group->group() == smp::topo::Group::RDP ||
                                  group->group() == smp::topo::Group::PP);
    std::vector<smp::optim::TensorBinding> bindings;
    for (size_t i = 0; error.empty() && i < count; ++i) {
      const smp_optimizer_tensor_t &t = tensors[i];
      const std::string which = "smp_optimizer_create: tensors[" + std::to_string(i) + "]";
      if (t.name == nullptr) { error = which + ".name is NULL"; break; }
      const int dtype = smp::capi::raw_enum(t.dtype);
      if (!smp::dtype_valid(dtype)) {
        error = which + " ('" + t.name + "').dtype " + std::to_string(dtype) +
                " is not an smp_dtype_t";
        break;
      }
      if (t.tp_replicated != 0 && t.tp_replicated != 1) {
        error = which + " ('" + t.name + "').tp_replicated must be 0 or 1";
        break;
      }
      smp::optim::TensorBinding b;
      b.spec = {t.name, t.count, static_cast<smp::DType>(dtype)};
      b.param = t.param;
      b.grad = t.grad;
      // A TP-replicated tensor outside a TP-spanning sharding group is held
      // by every TP rank: count it on tp_rank 0 only.
      b.in_norm = !(t.tp_replicated && !group_spans_tp && tp_rank != 0);
      bindings.push_back(std::move(b));
    }
    if (!error.empty()) bindings.clear();

    smp::trace::Args event;
    event.group = group->group_name();
    smp::trace::Scope scope("optimizer_create", event);  // collective checks, layout
    smp::comm::CallScope call([&] {
      return "smp_optimizer_create(" + std::to_string(count) + " tensors, " + group->group_name() + ")";
    });
    auto h = std::make_unique<smp_optimizer>();
    h->context = &ctx;
    h->group_name = group->group_name();
    h->opt = std::make_unique<smp::optim::ShardedOptimizer>(*group, norm, std::move(bindings), cfg, error);
    std::lock_guard<std::mutex> lock(g_mu);
    g_live.insert(h.get());
    *optimizer = h.release();
  });
}

smp_status_t smp_optimizer_destroy(smp_optimizer_t optimizer) {
  return smp::capi::guarded_any([&] {
    if (optimizer == nullptr) return;
    {
      std::lock_guard<std::mutex> lock(g_mu);
      require(g_live.erase(optimizer) != 0,
              "smp_optimizer_destroy: optimizer is not a live handle (destroyed twice?)");
    }
    delete optimizer;
  });
}

smp_status_t smp_optimizer_step(smp_optimizer_t optimizer, double grad_scale, int *skipped,
                                double *grad_norm) {
  return guarded([&](smp::comm::Context &ctx) {
    auto &o = live(optimizer, ctx, "smp_optimizer_step");
    require(std::isfinite(grad_scale) && grad_scale > 0,
            "smp_optimizer_step: grad_scale must be finite and > 0 (1.0 = no scaling)");
    smp::trace::Scope scope("optimizer_step", event_args(*optimizer));
    smp::comm::CallScope call([&] {
      char scale[32];
      std::snprintf(scale, sizeof scale, "%g", grad_scale);
      return "smp_optimizer_step(grad_scale " + std::string(scale) + ", " + optimizer->group_name + ")";
    });
    const smp::optim::StepResult r = o.step(grad_scale);
    if (skipped) *skipped = r.skipped ? 1 : 0;
    if (grad_norm) *grad_norm = r.grad_norm;
  });
}

smp_status_t smp_optimizer_set_lr(smp_optimizer_t optimizer, double lr) {
  return guarded([&](smp::comm::Context &ctx) {
    live(optimizer, ctx, "smp_optimizer_set_lr").set_lr(lr);
  });
}

smp_status_t smp_optimizer_gather_params(smp_optimizer_t optimizer) {
  return guarded([&](smp::comm::Context &ctx) {
    auto &o = live(optimizer, ctx, "smp_optimizer_gather_params");
    smp::trace::Scope scope("optimizer_gather_params", event_args(*optimizer));
    smp::comm::CallScope call([&] { return std::string("smp_optimizer_gather_params(") + optimizer->group_name + ")"; });
    o.gather_params();
  });
}

smp_status_t smp_optimizer_shard_info(smp_optimizer_t optimizer, size_t *shard_elems,
                                      size_t *num_states, size_t *num_pieces, long long *step) {
  return guarded([&](smp::comm::Context &ctx) {
    auto &o = live(optimizer, ctx, "smp_optimizer_shard_info");
    if (shard_elems) *shard_elems = o.layout().shard_elems();
    if (num_states) *num_states = o.state_names().size();
    if (num_pieces) *num_pieces = o.pieces().size();
    if (step) *step = static_cast<long long>(o.step_count());
  });
}

smp_status_t smp_optimizer_state_name(smp_optimizer_t optimizer, size_t index, const char **name) {
  return guarded([&](smp::comm::Context &ctx) {
    auto &o = live(optimizer, ctx, "smp_optimizer_state_name");
    require(name != nullptr, "smp_optimizer_state_name: name (the output) is NULL");
    require(index < o.state_names().size(),
            "smp_optimizer_state_name: index " + std::to_string(index) + " >= num_states " +
                std::to_string(o.state_names().size()));
    *name = o.state_names()[index].c_str();
  });
}

smp_status_t smp_optimizer_piece(smp_optimizer_t optimizer, size_t index,
                                 smp_optimizer_piece_t *piece) {
  return guarded([&](smp::comm::Context &ctx) {
    auto &o = live(optimizer, ctx, "smp_optimizer_piece");
    require(piece != nullptr, "smp_optimizer_piece: piece (the output) is NULL");
    require(index < o.pieces().size(), "smp_optimizer_piece: index " + std::to_string(index) +
                                           " >= num_pieces " + std::to_string(o.pieces().size()));
    const smp::optim::Piece &p = o.pieces()[index];
    piece->tensor_index = p.tensor;
    piece->tensor_name = o.layout().tensors()[p.tensor].name.c_str();
    piece->tensor_offset = p.tensor_offset;
    piece->shard_offset = p.shard_offset;
    piece->length = p.length;
  });
}

smp_status_t smp_optimizer_export_state(smp_optimizer_t optimizer, const char *state, float *out,
                                        size_t count) {
  return guarded([&](smp::comm::Context &ctx) {
    auto &o = live(optimizer, ctx, "smp_optimizer_export_state");
    require(state != nullptr, "smp_optimizer_export_state: state (the name) is NULL");
    const size_t n = o.layout().shard_elems();
    require(count == n, "smp_optimizer_export_state: count " + std::to_string(count) +
                            " != shard_elems " + std::to_string(n));
    smp::capi::require_ptr(out, count, "smp_optimizer_export_state: out");
    o.export_state(state, out);  // host or CUDA state
  });
}

smp_status_t smp_optimizer_import_state(smp_optimizer_t optimizer, const char *state,
                                        const float *in, size_t count) {
  return guarded([&](smp::comm::Context &ctx) {
    auto &o = live(optimizer, ctx, "smp_optimizer_import_state");
    require(state != nullptr, "smp_optimizer_import_state: state (the name) is NULL");
    const size_t n = o.layout().shard_elems();
    require(count == n, "smp_optimizer_import_state: count " + std::to_string(count) +
                            " != shard_elems " + std::to_string(n));
    smp::capi::require_ptr(in, count, "smp_optimizer_import_state: in");
    o.import_state(state, in);
  });
}

smp_status_t smp_optimizer_set_step(smp_optimizer_t optimizer, long long step) {
  return guarded([&](smp::comm::Context &ctx) {
    live(optimizer, ctx, "smp_optimizer_set_step").set_step_count(step);
  });
}

smp_status_t smp_optimizer_state_bytes(smp_optimizer_t optimizer, size_t *bytes) {
  return guarded([&](smp::comm::Context &ctx) {
    auto &o = live(optimizer, ctx, "smp_optimizer_state_bytes");
    require(bytes != nullptr, "smp_optimizer_state_bytes: bytes (the output) is NULL");
    *bytes = o.state_bytes();
  });
}

}  // extern "C"
