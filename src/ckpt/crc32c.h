// CRC32C (Castagnoli), the checksum recorded per checkpoint file. Computed
// incrementally while a file is written, so saving never re-reads data.
#pragma once

#include <cstddef>
#include <cstdint>

namespace smp::ckpt {

// Continues a CRC: crc32c_update(crc32c_update(0, a), b) == crc32c of a+b.
// Uses the SSE4.2 crc32 instruction when the CPU has it.
uint32_t crc32c_update(uint32_t crc, const void *data, size_t n);
inline uint32_t crc32c(const void *data, size_t n) { return crc32c_update(0, data, n); }
// The table-driven path alone (what crc32c_update uses without SSE4.2);
// exposed so tests can check both paths agree.
uint32_t crc32c_update_portable(uint32_t crc, const void *data, size_t n);

}  // namespace smp::ckpt
