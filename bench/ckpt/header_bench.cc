// ckpt-header-bench BYTES: times the safetensors reader on a header of
// about BYTES (at most the 100,000,000-byte limit) made of zero-size
// tensors with 200-byte names: the parse must stay linear (a crafted 6 MB
// header took 14.7 s when duplicate keys were compared pairwise).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ckpt/safetensors.h"
#include "cli.h"
#include "common/error.h"

int main(int argc, char **argv) {
  size_t want = 100000000;
  CLI::App app{"ckpt-header-bench: parse a safetensors header of about BYTES"};
  app.add_option("bytes", want, "header size")->check(CLI::PositiveNumber);
  if (const int rc = smp::bench::parse(app, argc, argv); rc >= 0) return rc;
  std::string h = "{";
  const std::string pad(180, 'x');
  size_t n = 0;
  while (h.size() + 300 < want) {
    h += (n ? "," : "") + std::string("\"") + pad + std::to_string(n) + "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}";
    ++n;
  }
  h += "}";
  h.append((8 - h.size() % 8) % 8, ' ');
  std::vector<uint8_t> file(8 + h.size());
  for (int i = 0; i < 8; ++i) file[static_cast<size_t>(i)] = static_cast<uint8_t>((h.size() >> (8 * i)) & 0xff);
  std::copy(h.begin(), h.end(), file.begin() + 8);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    const smp::ckpt::Header hd = smp::ckpt::parse_file(file.data(), file.size(), "bench");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (hd.tensors.size() != n || !hd.find(pad + std::to_string(n / 2))) return 1;
    std::printf("header %zu bytes, %zu tensors: parsed in %.2f s\n", h.size(), n, s);
  } catch (const smp::Error &e) {
    std::printf("rejected: %s\n", e.what());
    return 1;
  }
  return 0;
}
