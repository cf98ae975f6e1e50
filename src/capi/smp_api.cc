// Lifecycle, queries and error reporting of the C API.
#include <string>

#include "capi/guard.h"

namespace smp::capi {

namespace {
thread_local std::string t_last_error;
}

void set_last_error(const std::string &message) { t_last_error = message; }
const char *last_error() { return t_last_error.c_str(); }

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

smp_status_t smp_finalize(void) {
  return guarded_any([] { smp::comm::Context::finalize(); });
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
