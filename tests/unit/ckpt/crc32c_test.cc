// CRC32C against the published check values (RFC 3720 B.4, the "check"
// value of the Castagnoli CRC), and the hardware path against the table.
#include "ckpt/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

using smp::ckpt::crc32c;
using smp::ckpt::crc32c_update;
using smp::ckpt::crc32c_update_portable;

TEST(Crc32c, CheckValues) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  std::vector<unsigned char> zeros(32, 0), ones(32, 0xff), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[static_cast<size_t>(i)] = static_cast<unsigned char>(i);
    dec[static_cast<size_t>(i)] = static_cast<unsigned char>(31 - i);
  }
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(inc.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c(dec.data(), 32), 0x113FDB5Cu);
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(Crc32c, PathsAgreeAndIncrementalEqualsWhole) {
  std::mt19937 rng(7);
  std::vector<unsigned char> data(100003);
  for (auto &b : data) b = static_cast<unsigned char>(rng());
  const uint32_t whole = crc32c(data.data(), data.size());
  EXPECT_EQ(crc32c_update_portable(0, data.data(), data.size()), whole);
  for (int trial = 0; trial < 50; ++trial) {
    const size_t cut = rng() % data.size();
    EXPECT_EQ(crc32c_update(crc32c_update(0, data.data(), cut), data.data() + cut, data.size() - cut), whole);
    // Unaligned starts and odd lengths through both paths.
    const size_t off = rng() % 64, len = rng() % 1000;
    EXPECT_EQ(crc32c_update(0, data.data() + off, len), crc32c_update_portable(0, data.data() + off, len));
  }
}
