// libFuzzer target over the safetensors reader: any input must be either
// accepted, with every tensor inside the data, or rejected with
// smp::Error(Status::Corrupt); never a crash, a sanitizer report, or
// another exception.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "ckpt/safetensors.h"
#include "common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    const smp::ckpt::Header h = smp::ckpt::parse_file(data, size, "fuzz");
    if (h.data_start + h.data_size != size) std::abort();
    for (const auto &t : h.tensors)
      if (t.begin > t.end || t.end > h.data_size || t.numel() * t.elem_size != t.end - t.begin) std::abort();
  } catch (const smp::Error &e) {
    if (e.status() != smp::Status::Corrupt) std::abort();
  }
  return 0;
}
