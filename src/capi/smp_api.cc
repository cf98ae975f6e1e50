// Lifecycle, queries and error reporting of the C API.
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "capi/guard.h"
#include "pipeline/timeline_file.h"

namespace smp::capi {

namespace {
thread_local std::string t_last_error;
std::atomic<bool> g_unhealthy{false};
}

void set_last_error(const std::string &message) { t_last_error = message; }
const char *last_error() { return t_last_error.c_str(); }

void set_unhealthy() { g_unhealthy.store(true, std::memory_order_relaxed); }
bool healthy() { return !g_unhealthy.load(std::memory_order_relaxed); }

trace::Args event_args(const Call &call) noexcept {
  trace::Args a;
  a.peer = call.peer;
  const int d = raw_enum(call.dtype), g = raw_enum(call.group);
  comm::Context *ctx = comm::Context::current();
  comm::Communicator *comm = ctx ? ctx->find_group(g) : nullptr;
  if (comm == nullptr) return a;
  a.group = comm->group_name();  // lives as long as the process
  if (!dtype_valid(d)) return a;
  long long bytes = static_cast<long long>(call.count * dtype_size(static_cast<DType>(d)));
  if (call.whole_buffer) bytes *= comm->size();
  a.bytes = bytes;
  return a;
}

}  // namespace smp::capi

using smp::capi::guarded;
using smp::capi::guarded_any;

extern "C" {

smp_status_t smp_init(const smp_config_t *config) {
  return guarded_any([&] {
    smp::comm::Options o;
    if (config) {
      // struct_size lets a newer header's larger struct reach an older
      // library and vice versa: read only the fields both know.
      if (config->struct_size < offsetof(smp_config_t, check) + sizeof(int))
        smp::invalid("smp_init: config->struct_size " + std::to_string(config->struct_size) +
                     " is too small; initialize the config with SMP_CONFIG_INIT");
      if (config->pp_size < 0) smp::invalid("smp_init: config->pp_size must be >= 1 (0 = unset)");
      if (config->tp_size < 0) smp::invalid("smp_init: config->tp_size must be >= 1 (0 = unset)");
      if (config->check < -1 || config->check > 1)
        smp::invalid("smp_init: config->check must be 0, 1 or -1 (unset)");
      if (config->timeout_seconds != config->timeout_seconds)
        smp::invalid("smp_init: config->timeout_seconds is NaN");
      o.pp_size = config->pp_size;
      o.tp_size = config->tp_size;
      if (config->placement) {
        o.placement = config->placement;
        if (o.placement.empty()) smp::invalid("smp_init: config->placement is empty (use NULL for unset)");
      }
      o.timeout_seconds = config->timeout_seconds;
      o.check = config->check;
    }
    smp::comm::Context::init(o);
  });
}

// With the timeline on, finalize first writes the events not yet written
// (timeline::write_at_finalize: an agreement, then the write, only when
// every rank is healthy). Collective then; Open MPI 4.1's MPI_Finalize
// waits for every rank anyway (measured: a rank 4 s late holds the others'
// MPI_Finalize 4 s). A rank that never gets here does not leave the others
// hanging: the launcher ends a job whose process exits without finalizing,
// and SMP_TIMEOUT's watchdog watches the agreement and the write. A failed
// write (rank 0's file) is reported after smp is finalized all the same.
smp_status_t smp_finalize(void) {
  return guarded_any([] {
    std::string write_error;
    smp::Status write_status = smp::Status::IO;
    if (smp::comm::Context *ctx = smp::comm::Context::current(); ctx && smp::trace::enabled()) {
      try {
        smp::pipeline::timeline::write_at_finalize(ctx->group(smp::topo::Group::World),
                                                   smp::capi::healthy());
      } catch (const smp::Error &e) {
        write_error = e.what();
        write_status = e.status();
      }
    }
    smp::comm::Context::finalize();
    if (!write_error.empty())
      smp::fail(write_status, "smp_finalize: smp is finalized, but the timeline was not written: " +
                                  write_error);
  });
}

smp_status_t smp_rank(smp_group_t group, int *rank) {
  return guarded([&](smp::comm::Context &ctx) {
    const auto g = smp::capi::to_group(group);
    smp::capi::require(rank != nullptr, "smp_rank: rank is NULL");
    *rank = ctx.group(g).rank();
  });
}

smp_status_t smp_size(smp_group_t group, int *size) {
  return guarded([&](smp::comm::Context &ctx) {
    const auto g = smp::capi::to_group(group);
    smp::capi::require(size != nullptr, "smp_size: size is NULL");
    *size = ctx.group(g).size();
  });
}

smp_status_t smp_group_create(const int *world_ranks, int nranks, smp_group_t *group) {
  return guarded([&](smp::comm::Context &ctx) {
    smp::capi::require(group != nullptr, "smp_group_create: group is NULL");
    smp::capi::require(nranks >= 1, "smp_group_create: nranks " + std::to_string(nranks) + " must be >= 1");
    smp::capi::require(world_ranks != nullptr, "smp_group_create: world_ranks is NULL");
    const smp::topo::Group g = ctx.create_group(std::vector<int>(world_ranks, world_ranks + nranks));
    const int v = static_cast<int>(g);
    std::memcpy(group, &v, sizeof v);
  });
}

smp_status_t smp_group_destroy(smp_group_t group) {
  return guarded([&](smp::comm::Context &ctx) { ctx.destroy_group(smp::capi::to_group(group)); });
}

smp_status_t smp_group_set_timeout(smp_group_t group, double seconds) {
  return guarded([&](smp::comm::Context &ctx) { ctx.set_group_timeout(smp::capi::to_group(group), seconds); });
}

smp_status_t smp_local_rank(int *local_rank) {
  return guarded([&](smp::comm::Context &ctx) {
    smp::capi::require(local_rank != nullptr, "smp_local_rank: local_rank is NULL");
    *local_rank = ctx.local_rank();
  });
}

smp_status_t smp_local_size(int *local_size) {
  return guarded([&](smp::comm::Context &ctx) {
    smp::capi::require(local_size != nullptr, "smp_local_size: local_size is NULL");
    *local_size = ctx.local_size();
  });
}

smp_status_t smp_device(int *device) {
  return guarded([&](smp::comm::Context &ctx) {
    smp::capi::require(device != nullptr, "smp_device: device is NULL");
    *device = ctx.device();
  });
}

void smp_version(int *major, int *minor, int *patch) {
  if (major) *major = SMP_VERSION_MAJOR;
  if (minor) *minor = SMP_VERSION_MINOR;
  if (patch) *patch = SMP_VERSION_PATCH;
}

const char *smp_status_string(smp_status_t status) {
  switch (status) {
    case SMP_SUCCESS: return "success";
    case SMP_ERR_INVALID_ARGUMENT: return "invalid argument";
    case SMP_ERR_NOT_INITIALIZED: return "not initialized";
    case SMP_ERR_UNSUPPORTED: return "unsupported";
    case SMP_ERR_BACKEND: return "backend error";
    case SMP_ERR_TIMEOUT: return "timeout";
    case SMP_ERR_PEER_FAILED: return "peer failed";
    case SMP_ERR_IO: return "I/O error";
    case SMP_ERR_CORRUPT: return "corrupt data";
    case SMP_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char *smp_last_error(void) { return smp::capi::last_error(); }

}  // extern "C"
