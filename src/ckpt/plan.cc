#include "ckpt/plan.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <map>
#include <tuple>

#include "ckpt/json.h"
#include "common/error.h"

namespace smp::ckpt {
namespace {

using json::Json;

std::vector<uint64_t> get_dims(const Json *v, const std::string &what) {
  if (!v || !v->is_array()) throw Error(Status::Corrupt, what + ": expected an array");
  std::vector<uint64_t> d;
  for (const auto &x : *v) {
    if (!x.is_number_unsigned()) throw Error(Status::Corrupt, what + ": expected non-negative integers");
    d.push_back(x.get<uint64_t>());
  }
  return d;
}

// The member key of object e, or nullptr.
const Json *member(const Json &e, const char *key) {
  const auto it = e.find(key);
  return it == e.end() ? nullptr : &*it;
}

}  // namespace

const char *kind_name(Kind k) { return k == Kind::Model ? "model" : "optimizer"; }

uint64_t GlobalTensor::bytes() const {
  uint64_t n = dtype_size(dtype);
  for (uint64_t d : shape) n *= d;
  return n;
}

Json descs_to_json(const std::vector<PieceDesc> &descs) {
  Json out = Json::array();
  for (const auto &d : descs) {
    Json e = {{"name", d.name},
              {"kind", static_cast<uint64_t>(d.kind)},
              {"dtype", static_cast<uint64_t>(d.dtype)},
              {"rep", d.replicated},
              {"shape", d.piece.shape()},
              {"offset", d.piece.offset()},
              {"extent", d.piece.extent()}};
    if (d.piece.is_range()) json::append(e, "range", {d.piece.range_begin(), d.piece.numel()});
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<PieceDesc> descs_from_json(const Json &v) {
  const std::string what = "piece descriptors";
  if (!v.is_array()) throw Error(Status::Corrupt, what + ": not an array");
  std::vector<PieceDesc> out;
  for (const auto &e : v) {
    const Json *name = member(e, "name"), *kind = member(e, "kind"), *dt = member(e, "dtype"), *rep = member(e, "rep");
    if (!name || !name->is_string() || !kind || !kind->is_number_unsigned() || kind->get<uint64_t>() > 1 || !dt ||
        !dt->is_number_unsigned() || dt->get<uint64_t>() > INT_MAX || !dtype_valid(dt->get<int>()) || !rep ||
        !rep->is_boolean())
      throw Error(Status::Corrupt, what + ": malformed entry");
    PieceDesc d;
    d.name = name->get<std::string>();
    d.kind = static_cast<Kind>(kind->get<int>());
    d.dtype = static_cast<DType>(dt->get<int>());
    d.replicated = rep->get<bool>();
    const auto shape = get_dims(member(e, "shape"), what);
    try {
      const auto off = get_dims(member(e, "offset"), what), ext = get_dims(member(e, "extent"), what);
      if (const Json *f = member(e, "range")) {
        const auto be = get_dims(f, what);
        if (be.size() != 2) throw Error(Status::Corrupt, what + ": range needs two numbers");
        d.piece = Piece::box_range(shape, off, ext, be[0], be[1], d.name);
      } else {
        d.piece = Piece::box(shape, off, ext, d.name);
      }
    } catch (const Error &err) {
      throw Error(Status::Corrupt, what + ": " + err.what());
    }
    out.push_back(std::move(d));
  }
  return out;
}

namespace {

// Pieces that hold the same elements get the same key (Piece::same_elements):
// one contiguous span is keyed by where it lies, whatever box or range
// describes it; anything else by its description.
using PieceKey = std::tuple<bool, uint64_t, uint64_t, std::vector<uint64_t>, std::vector<uint64_t>>;
PieceKey key_of(const Piece &p) {
  if (p.num_runs() == 1) return {false, p.lo(), p.numel(), {}, {}};
  return {true, p.range_begin(), p.numel(), p.offset(), p.extent()};
}

}  // namespace

std::vector<GlobalTensor> build_table(const std::vector<std::vector<PieceDesc>> &per_rank) {
  struct Held {
    int rank;
    const PieceDesc *d;
  };
  std::map<std::pair<int, std::string>, std::vector<Held>> by_name;
  for (size_t r = 0; r < per_rank.size(); ++r)
    for (const auto &d : per_rank[r]) by_name[{static_cast<int>(d.kind), d.name}].push_back({static_cast<int>(r), &d});

  std::vector<GlobalTensor> table;
  for (auto &[key, held] : by_name) {
    const PieceDesc &first = *held.front().d;
    const std::string what = std::string(kind_name(first.kind)) + " tensor \"" + first.name + "\"";
    GlobalTensor t;
    t.name = first.name;
    t.kind = first.kind;
    t.dtype = first.dtype;
    t.shape = first.piece.shape();
    // Copies of one piece: the first holder (in rank order) owns it, the
    // others must be flagged replicated, as must the owner.
    std::map<PieceKey, const Held *> owner_of;
    for (const auto &h : held) {
      if (h.d->dtype != t.dtype || h.d->piece.shape() != t.shape)
        invalid(what + ": rank " + std::to_string(held.front().rank) + " registers it as " + dtype_name(t.dtype) +
                " " + first.piece.describe() + " but rank " + std::to_string(h.rank) + " as " +
                dtype_name(h.d->dtype) + " " + h.d->piece.describe());
      if (h.d->piece.numel() == 0) continue;
      const auto [it, fresh] = owner_of.emplace(key_of(h.d->piece), &h);
      if (fresh) {
        t.owners.push_back({h.rank, h.d->piece});
        continue;
      }
      const Held &o = *it->second;
      if (!(h.d->replicated && o.d->replicated))
        invalid(what + ": ranks " + std::to_string(o.rank) + " and " + std::to_string(h.rank) + " both hold " +
                h.d->piece.describe() + "; flag replicated pieces as replicated");
    }
    // The distinct pieces must tile the tensor: no partial overlap, no gap.
    std::vector<const Piece *> pieces;
    for (const auto &o : t.owners) pieces.push_back(&o.piece);
    const Tiling tiling = check_tiling(pieces, first.piece.global_numel());
    if (tiling.verdict == Tiling::Verdict::Overlap) {
      const Owner &a = t.owners[tiling.a], &b = t.owners[tiling.b];
      invalid(what + ": the pieces of ranks " + std::to_string(a.rank) + " (" + a.piece.describe() + ") and " +
              std::to_string(b.rank) + " (" + b.piece.describe() + ") overlap in " +
              std::to_string(overlap_count(a.piece, b.piece)) + " elements");
    }
    if (tiling.verdict == Tiling::Verdict::Gap) {
      uint64_t covered = 0;
      for (const auto &o : t.owners) covered += o.piece.numel();
      invalid(what + ": the ranks' pieces cover " + std::to_string(covered) + " of its " +
              std::to_string(first.piece.global_numel()) + " elements (element " + std::to_string(tiling.at) +
              " is missing)");
    }
    table.push_back(std::move(t));
  }
  return table;
}

std::vector<FilePlan> plan_files(const std::vector<GlobalTensor> &table, uint64_t max_file_bytes, int nranks) {
  std::vector<FilePlan> files;
  for (Kind kind : {Kind::Model, Kind::Optimizer}) {
    std::vector<FilePlan> mine;
    for (size_t i = 0; i < table.size(); ++i) {
      if (table[i].kind != kind) continue;
      const uint64_t b = table[i].bytes();
      if (mine.empty() || (max_file_bytes > 0 && mine.back().bytes > 0 && mine.back().bytes + b > max_file_bytes))
        mine.push_back(FilePlan{"", kind, 0, {}, 0});
      mine.back().tensors.push_back(i);
      mine.back().bytes += b;
    }
    for (size_t f = 0; f < mine.size(); ++f) {
      if (mine.size() == 1) {
        mine[f].name = std::string(kind_name(kind)) + ".safetensors";
      } else {
        char buf[64];
        std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu.safetensors", f + 1, mine.size());
        mine[f].name = std::string(kind_name(kind)) + buf;
      }
      files.push_back(std::move(mine[f]));
    }
  }
  for (size_t f = 0; f < files.size(); ++f) files[f].writer = static_cast<int>(f % static_cast<size_t>(nranks));
  return files;
}

}  // namespace smp::ckpt
