// 64-bit FNV-1a: the one fingerprint smp compares across ranks (group
// members, tensor lists, optimizer settings). Cheap, and a collision only
// hides a disagreement that a later step would trip over anyway.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace smp {

struct Fnv1a {
  static constexpr uint64_t kOffset = 1469598103934665603ull;
  static constexpr uint64_t kPrime = 1099511628211ull;
  uint64_t h = kOffset;

  // Standard FNV-1a, one byte at a time.
  Fnv1a &bytes(const void *p, size_t n) {
    const auto *c = static_cast<const unsigned char *>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ c[i]) * kPrime;
    return *this;
  }
  // v's 8 bytes, least significant first (the same on every host).
  Fnv1a &u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) h = (h ^ ((v >> (8 * i)) & 0xff)) * kPrime;
    return *this;
  }
  Fnv1a &str(const std::string &s) { return u64(s.size()).bytes(s.data(), s.size()); }
  // One whole word per step: the fold the optimizer's settings and tensor
  // list fingerprints were defined with (kept, so that checkpoints written
  // before stay comparable).
  Fnv1a &word(uint64_t v) {
    h = (h ^ v) * kPrime;
    return *this;
  }
};

}  // namespace smp
