// Writes what read_safetensors_test.py checks: a consolidated checkpoint
// (split into several files, with optimizer state) holding one tensor per
// dtype, values given by the formula the Python side recomputes.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "common/dtype.h"

using namespace smp;
using namespace smp::ckpt;

namespace {

// Python mirror: value(dtype, i) in read_safetensors_test.py.
void fill(DType t, std::vector<char> &buf, uint64_t n) {
  const size_t es = dtype_size(t);
  buf.assign(n * es + 1, 0);
  for (uint64_t i = 0; i < n; ++i) {
    char *p = buf.data() + i * es;
    const double f = static_cast<double>(i % 17) * 0.75 - 5.0;
    const int64_t s = static_cast<int64_t>((i * 7) % 200) - 100;
    switch (t) {
      case DType::F32: { const float v = static_cast<float>(f); std::memcpy(p, &v, 4); break; }
      case DType::F64: std::memcpy(p, &f, 8); break;
      case DType::F16: { const uint16_t v = float_to_f16(static_cast<float>(f)); std::memcpy(p, &v, 2); break; }
      case DType::BF16: { const uint16_t v = float_to_bf16(static_cast<float>(f)); std::memcpy(p, &v, 2); break; }
      case DType::I8: { const int8_t v = static_cast<int8_t>(s); std::memcpy(p, &v, 1); break; }
      case DType::U8: { const uint8_t v = static_cast<uint8_t>((i * 7) % 256); std::memcpy(p, &v, 1); break; }
      case DType::I32: { const int32_t v = static_cast<int32_t>(s * 1000); std::memcpy(p, &v, 4); break; }
      case DType::I64: { const int64_t v = s * 1000000007LL; std::memcpy(p, &v, 8); break; }
    }
  }
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  struct Def {
    const char *name;
    DType t;
    std::vector<uint64_t> shape;
  };
  const std::vector<Def> defs = {
      {"f32.weight", DType::F32, {33, 17}},   {"f64", DType::F64, {5, 4, 3}}, {"f16", DType::F16, {100}},
      {"bf16.weight", DType::BF16, {7, 9}},   {"i8", DType::I8, {50}},        {"u8", DType::U8, {3, 3}},
      {"i32", DType::I32, {4, 1, 6}},         {"i64.scalar", DType::I64, {}}, {"empty", DType::F32, {0, 5}},
  };
  std::vector<std::vector<char>> bufs(defs.size());
  std::vector<char> opt;
  Checkpoint c;
  for (size_t k = 0; k < defs.size(); ++k) {
    uint64_t n = 1;
    for (uint64_t d : defs[k].shape) n *= d;
    fill(defs[k].t, bufs[k], n);
    c.add(defs[k].name, Kind::Model, defs[k].t, Piece::whole(defs[k].shape, defs[k].name), bufs[k].data(), false);
  }
  fill(DType::F32, opt, 33 * 17);
  c.add("f32.weight", Kind::Optimizer, DType::F32, Piece::whole({33, 17}, "o"), opt.data(), false);
  c.set_user("step", "12");
  smp::comm::SelfBootstrap ex;
  SaveOptions o;
  o.max_file_bytes = 1500;  // several model files and an index
  o.buffer_bytes = 4096;
  std::printf("%s\n", c.save(ex, argv[1], o).c_str());
  return 0;
}
