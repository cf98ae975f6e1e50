#include "ckpt/crc32c.h"

#include <array>
#include <cstring>

namespace smp::ckpt {
namespace {

constexpr uint32_t kPoly = 0x82f63b78u;  // reflected Castagnoli polynomial

struct Table {
  std::array<std::array<uint32_t, 256>, 8> t{};
  Table() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1u) ? kPoly : 0u);
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xffu];
  }
};

// Slicing-by-8: the portable path.
uint32_t update_soft(uint32_t c, const uint8_t *p, size_t n) {
  static const Table tab;
  const auto &t = tab.t;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    w ^= c;  // little-endian hosts only (checked at compile time below)
    c = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^
        t[4][(w >> 24) & 0xff] ^ t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^
        t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xffu];
  return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SMP_CRC_HW 1
__attribute__((target("sse4.2"))) uint32_t update_hw(uint32_t c, const uint8_t *p, size_t n) {
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c64 = __builtin_ia32_crc32di(c64, w);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c64);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}
#endif

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "crc32c assumes a little-endian host");

}  // namespace

uint32_t crc32c_update_portable(uint32_t crc, const void *data, size_t n) {
  return ~update_soft(~crc, static_cast<const uint8_t *>(data), n);
}

uint32_t crc32c_update(uint32_t crc, const void *data, size_t n) {
  const auto *p = static_cast<const uint8_t *>(data);
  uint32_t c = ~crc;
#ifdef SMP_CRC_HW
  static const bool hw = __builtin_cpu_supports("sse4.2");
  c = hw ? update_hw(c, p, n) : update_soft(c, p, n);
#else
  c = update_soft(c, p, n);
#endif
  return ~c;
}

}  // namespace smp::ckpt
