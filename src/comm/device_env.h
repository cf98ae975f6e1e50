// The environment knobs of the CUDA-memory backends (backend_select.cc),
// parsed apart from CUDA so that their errors are unit-tested without a GPU.
// A bad value is a usage error: smp::Error(InvalidArgument) naming the
// variable, what it holds and what it takes.
#pragma once

#include <cctype>
#include <cstddef>
#include <cstdlib>
#include <string>

#include "common/env.h"
#include "common/error.h"

namespace smp::comm {

// A byte count from the environment variable `name`: `fallback` when it is
// unset or empty; at least `least`.
inline size_t env_bytes(const char *name, size_t fallback, size_t least) {
  return static_cast<size_t>(env::count(name, fallback, least, "a number of bytes"));
}

// SMP_CUDA_IPC: "0" off; unset, empty or "1" on (a group that cannot use
// it falls back to the staged path); "require" on, and a group that cannot
// use it fails instead of falling back.
enum class IpcMode { Off, On, Required };
inline IpcMode ipc_mode() {
  const char *v = std::getenv("SMP_CUDA_IPC");
  const std::string s = v ? v : "";
  if (s == "0") return IpcMode::Off;
  if (s.empty() || s == "1") return IpcMode::On;
  if (s == "require") return IpcMode::Required;
  invalid("SMP_CUDA_IPC='" + s + "' is not 0, 1 or require");
}

}  // namespace smp::comm
