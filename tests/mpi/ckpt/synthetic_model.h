// A small synthetic hybrid-parallel model, described for any (pp, tp, rdp)
// layout the way a training framework would hold it: layers dealt to
// pipeline stages, tensor-parallel slices along dim 0 or 1 (uneven sizes
// included), norms and scalars replicated, every dtype, and ZeRO-style
// optimizer state: each rdp rank holds a contiguous range of its slice's
// flattened elements. Every element's value is a function of (tensor name,
// global coordinates), computed here independently of the library's index
// math, so a load under any layout can be checked element by element.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "common/dtype.h"
#include "topo/layout.h"

namespace ckpt_mpi {

using smp::DType;
using smp::ckpt::Kind;

constexpr uint64_t kH = 8, kV = 13, kLayers = 6;

// Part i of n nearly equal parts of [0, len): the first len % n get one more.
inline void split(uint64_t len, uint64_t n, uint64_t i, uint64_t *off, uint64_t *cnt) {
  const uint64_t base = len / n, extra = len % n;
  *cnt = base + (i < extra ? 1 : 0);
  *off = i * base + (i < extra ? i : extra);
}

struct TensorDef {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  int stage;       // pipeline stage that holds it
  int split_dim;   // tensor-parallel split dimension, -1 = replicated over tp
};

inline std::vector<TensorDef> model_tensors(int pp) {
  std::vector<TensorDef> t;
  t.push_back({"embed.weight", DType::F32, {kV, kH}, 0, 0});
  for (uint64_t l = 0; l < kLayers; ++l) {
    const int st = static_cast<int>(l * static_cast<uint64_t>(pp) / kLayers);
    const std::string p = "layers." + std::to_string(l) + ".";
    t.push_back({p + "qkv.weight", DType::BF16, {3 * kH, kH}, st, 0});
    t.push_back({p + "proj.weight", DType::F16, {kH, 2 * kH + 3}, st, 1});
    t.push_back({p + "norm.weight", DType::F32, {kH}, st, -1});
    t.push_back({p + "steps", DType::I64, {}, st, -1});
    t.push_back({p + "bias8", DType::I8, {kH + 1}, st, 0});
    t.push_back({p + "mask", DType::U8, {3, 5}, st, -1});
    t.push_back({p + "pos", DType::I32, {2 * kH, 3}, st, 0});
  }
  t.push_back({"head.weight", DType::F64, {kV, kH}, pp - 1, 1});
  return t;
}

inline uint64_t name_hash(const std::string &s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

// The value at global row-major index g: small integers, exact in every dtype.
inline int64_t value(const std::string &name, bool optimizer, uint64_t g) {
  const uint64_t h = name_hash(name) + (optimizer ? 77 : 0);
  return static_cast<int64_t>((h % 97 + g * 7) % 251) - 120;
}

inline void store(DType t, char *dst, int64_t v) {
  switch (t) {
    case DType::F32: { const float f = static_cast<float>(v); std::memcpy(dst, &f, 4); break; }
    case DType::F64: { const double f = static_cast<double>(v); std::memcpy(dst, &f, 8); break; }
    case DType::F16: { const uint16_t h = smp::float_to_f16(static_cast<float>(v)); std::memcpy(dst, &h, 2); break; }
    case DType::BF16: { const uint16_t h = smp::float_to_bf16(static_cast<float>(v)); std::memcpy(dst, &h, 2); break; }
    case DType::I8: { const int8_t x = static_cast<int8_t>(v); std::memcpy(dst, &x, 1); break; }
    case DType::U8: { const uint8_t x = static_cast<uint8_t>(v + 120); std::memcpy(dst, &x, 1); break; }
    case DType::I32: { const int32_t x = static_cast<int32_t>(v); std::memcpy(dst, &x, 4); break; }
    case DType::I64: std::memcpy(dst, &v, 8); break;
  }
}

// One registered piece with its buffer.
struct Held {
  TensorDef def;
  Kind kind;
  DType dtype;
  std::vector<uint64_t> offset, extent;
  uint64_t begin = 0, count = 0;  // range of the box
  bool replicated = false;
  std::vector<char> data;

  // Global row-major index of every local element, by walking the box's
  // coordinates (independent of smp::ckpt::Piece).
  std::vector<uint64_t> globals() const {
    std::vector<uint64_t> out;
    const auto &s = def.shape;
    uint64_t box_n = 1;
    for (uint64_t e : extent) box_n *= e;
    std::vector<uint64_t> idx(s.size(), 0);
    for (uint64_t k = 0; k < box_n; ++k) {
      if (k >= begin && k < begin + count) {
        uint64_t g = 0;
        for (size_t d = 0; d < s.size(); ++d) g = g * s[d] + offset[d] + idx[d];
        out.push_back(g);
      }
      for (size_t d = s.size(); d-- > 0;) {
        if (++idx[d] < extent[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  }
  void fill() {
    const size_t es = smp::dtype_size(dtype);
    const auto g = globals();
    data.assign(g.size() * es, 0);
    for (size_t i = 0; i < g.size(); ++i) store(dtype, data.data() + i * es, value(def.name, kind == Kind::Optimizer, g[i]));
  }
  // Number of elements that differ from the expected values.
  size_t mismatches() const {
    const size_t es = smp::dtype_size(dtype);
    const auto g = globals();
    std::vector<char> want(es);
    size_t bad = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      store(dtype, want.data(), value(def.name, kind == Kind::Optimizer, g[i]));
      bad += std::memcmp(want.data(), data.data() + i * es, es) != 0;
    }
    return bad;
  }
};

// What world rank `rank` of `layout` holds (nothing if rank >= layout size).
inline std::vector<Held> pieces_for(const smp::topo::Layout &layout, int rank) {
  std::vector<Held> out;
  if (rank >= layout.size()) return out;
  const auto c = layout.coord(rank);
  const uint64_t tp = static_cast<uint64_t>(layout.tp_size()), rdp = static_cast<uint64_t>(layout.rdp_size());
  for (const auto &d : model_tensors(layout.pp_size())) {
    if (d.stage != c.pp) continue;
    Held m{d, Kind::Model, d.dtype, std::vector<uint64_t>(d.shape.size(), 0), d.shape, 0, 0, true, {}};
    if (d.split_dim >= 0) {
      const size_t sd = static_cast<size_t>(d.split_dim);
      split(d.shape[sd], tp, static_cast<uint64_t>(c.tp), &m.offset[sd], &m.extent[sd]);
    }
    uint64_t n = 1;
    for (uint64_t e : m.extent) n *= e;
    m.count = n;
    // Model pieces are identical across rdp (and across tp when unsplit).
    m.replicated = true;
    // Optimizer state: float32, this rdp rank's range of the slice.
    Held o = m;
    o.kind = Kind::Optimizer;
    o.dtype = DType::F32;
    split(n, rdp, static_cast<uint64_t>(c.rdp), &o.begin, &o.count);
    o.replicated = d.split_dim < 0;  // unsplit tensors: same range on every tp rank
    out.push_back(std::move(m));
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace ckpt_mpi
