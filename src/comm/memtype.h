// Where a buffer lives; picks the backend that moves it. Host only for now:
// the CUDA issue teaches classify() to recognise device and managed memory
// (cudaPointerGetAttributes) and adds the backends for them.
#pragma once

namespace smp::comm {

enum class MemType : int { Host = 0, Cuda = 1 };
inline constexpr int kNumMemTypes = 2;

inline const char *memtype_name(MemType m) { return m == MemType::Host ? "host" : "cuda"; }

// Memory type of the buffer at p (nullptr counts as host).
MemType classify(const void *p);

}  // namespace smp::comm
