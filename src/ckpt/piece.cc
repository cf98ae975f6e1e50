#include "ckpt/piece.h"

#include <algorithm>
#include <queue>
#include <tuple>

#include "common/error.h"

namespace smp::ckpt {
namespace {

uint64_t checked_numel(const std::vector<uint64_t> &dims, const std::string &what) {
  uint64_t n = 1;
  for (uint64_t d : dims) {
    if (d != 0 && n > UINT64_MAX / d) invalid(what + ": element count overflows");
    n *= d;
  }
  return n;
}

std::string dims_str(const std::vector<uint64_t> &d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

}  // namespace

Piece Piece::box_range(const std::vector<uint64_t> &shape, const std::vector<uint64_t> &offset,
                       const std::vector<uint64_t> &extent, uint64_t begin, uint64_t count, const std::string &what) {
  if (offset.size() != shape.size() || extent.size() != shape.size())
    invalid(what + ": offsets and local shape need " + std::to_string(shape.size()) + " dimensions");
  for (size_t d = 0; d < shape.size(); ++d)
    if (offset[d] > shape[d] || extent[d] > shape[d] - offset[d])
      invalid(what + ": dimension " + std::to_string(d) + " slice [" + std::to_string(offset[d]) + ", " +
              std::to_string(offset[d]) + "+" + std::to_string(extent[d]) + ") leaves the global size " +
              std::to_string(shape[d]));
  Piece p;
  p.shape_ = shape;
  p.offset_ = offset;
  p.extent_ = extent;
  p.global_numel_ = checked_numel(shape, what);
  p.box_numel_ = checked_numel(extent, what);
  if (begin > p.box_numel_ || count > p.box_numel_ - begin)
    invalid(what + ": element range [" + std::to_string(begin) + ", " + std::to_string(begin) + "+" +
            std::to_string(count) + ") leaves the " + std::to_string(p.box_numel_) + " elements of its box");
  p.begin_ = begin;
  p.numel_ = count;
  p.ranged_ = !(begin == 0 && count == p.box_numel_);
  p.finish();
  return p;
}

Piece Piece::box(const std::vector<uint64_t> &shape, const std::vector<uint64_t> &offset,
                 const std::vector<uint64_t> &extent, const std::string &what) {
  if (extent.size() != shape.size()) invalid(what + ": local shape needs " + std::to_string(shape.size()) + " dimensions");
  return box_range(shape, offset, extent, 0, checked_numel(extent, what), what);
}

Piece Piece::flat(const std::vector<uint64_t> &shape, uint64_t begin, uint64_t count, const std::string &what) {
  return box_range(shape, std::vector<uint64_t>(shape.size(), 0), shape, begin, count, what);
}

Piece Piece::whole(const std::vector<uint64_t> &shape, const std::string &what) {
  return box(shape, std::vector<uint64_t>(shape.size(), 0), shape, what);
}

void Piece::finish() {
  const size_t k = shape_.size();
  stride_.assign(k, 1);
  for (size_t d = k; d-- > 1;) stride_[d - 1] = stride_[d] * shape_[d];
  if (numel_ == 0) {
    runs_ = 0;
    lo_ = hi_ = 0;
    return;
  }
  if (k == 0) {
    inner_ = 0;
    run_len_ = 1;
  } else {
    // The innermost dimensions the box covers fully are contiguous with
    // the first one it cuts; runs step over the dimensions outside that.
    size_t j = k - 1;
    while (j > 0 && offset_[j] == 0 && extent_[j] == shape_[j]) --j;
    inner_ = j;
    run_len_ = extent_[j] * stride_[j];
  }
  first_ = begin_ / run_len_;
  runs_ = (begin_ + numel_ - 1) / run_len_ - first_ + 1;
  lo_ = run(0).global;
  const Run last = run(runs_ - 1);
  hi_ = last.global + last.len;
}

Run Piece::run(uint64_t i) const {
  const uint64_t b = first_ + i;  // box run index
  uint64_t g = 0;
  if (!shape_.empty()) {
    g = offset_[inner_] * stride_[inner_];
    uint64_t rest = b;
    for (size_t d = inner_; d-- > 0;) {
      g += (offset_[d] + rest % extent_[d]) * stride_[d];
      rest /= extent_[d];
    }
  }
  // Clip the box run [b*L, (b+1)*L) to the range [begin_, begin_+numel_).
  const uint64_t s = std::max(b * run_len_, begin_);
  const uint64_t e = std::min((b + 1) * run_len_, begin_ + numel_);
  return Run{g + (s - b * run_len_), s - begin_, e - s};
}

std::vector<uint64_t> Piece::local_shape() const {
  if (ranged_) return {numel_};
  return extent_;
}

std::vector<Run> Piece::runs_in(uint64_t from, uint64_t to) const {
  std::vector<Run> out;
  if (runs_ == 0 || from >= to || to <= lo_ || from >= hi_) return out;
  // Runs ascend in global order: binary search the first that ends after from.
  uint64_t a = 0, b = runs_;
  while (a < b) {
    const uint64_t m = a + (b - a) / 2;
    const Run r = run(m);
    if (r.global + r.len <= from) a = m + 1;
    else b = m;
  }
  for (uint64_t i = a; i < runs_; ++i) {
    Run r = run(i);
    if (r.global >= to) break;
    if (r.global < from) {
      const uint64_t cut = from - r.global;
      r.global += cut;
      r.local += cut;
      r.len -= cut;
    }
    if (r.global + r.len > to) r.len = to - r.global;
    out.push_back(r);
  }
  return out;
}

bool Piece::same_elements(const Piece &o) const {
  if (shape_ != o.shape_ || numel_ != o.numel_) return false;
  if (numel_ == 0) return true;
  if (offset_ == o.offset_ && extent_ == o.extent_ && begin_ == o.begin_) return true;
  // Different descriptions of one contiguous span (a row slice and a flat
  // range, say).
  return runs_ == 1 && o.runs_ == 1 && lo_ == o.lo_;
}

std::string Piece::describe() const {
  std::string s = "[";
  for (size_t d = 0; d < shape_.size(); ++d)
    s += (d ? ", " : "") + std::to_string(offset_[d]) + ":" + std::to_string(offset_[d] + extent_[d]);
  s += "] of " + dims_str(shape_);
  if (ranged_) s = "elements [" + std::to_string(begin_) + ", " + std::to_string(begin_ + numel_) + ") of " + s;
  return s;
}

std::vector<Overlap> overlaps(const Piece &a, const Piece &b) {
  std::vector<Overlap> out;
  if (a.numel() == 0 || b.numel() == 0) return out;
  // Ranges lie inside their boxes: disjoint boxes cannot overlap.
  for (size_t d = 0; d < a.shape().size(); ++d)
    if (std::max(a.offset()[d], b.offset()[d]) >= std::min(a.offset()[d] + a.extent()[d], b.offset()[d] + b.extent()[d]))
      return out;
  const uint64_t from = std::max(a.lo(), b.lo()), to = std::min(a.hi(), b.hi());
  if (from >= to) return out;
  const std::vector<Run> ra = a.runs_in(from, to), rb = b.runs_in(from, to);
  size_t i = 0, j = 0;
  while (i < ra.size() && j < rb.size()) {
    const Run &x = ra[i], &y = rb[j];
    const uint64_t s = std::max(x.global, y.global);
    const uint64_t e = std::min(x.global + x.len, y.global + y.len);
    if (s < e) {
      Overlap o{s, x.local + (s - x.global), y.local + (s - y.global), e - s};
      // Extend the previous overlap when both sides continue it.
      if (!out.empty()) {
        Overlap &p = out.back();
        if (p.global + p.len == o.global && p.a_local + p.len == o.a_local && p.b_local + p.len == o.b_local) {
          p.len += o.len;
          o.len = 0;
        }
      }
      if (o.len) out.push_back(o);
    }
    if (x.global + x.len <= y.global + y.len) ++i;
    else ++j;
  }
  return out;
}

uint64_t overlap_count(const Piece &a, const Piece &b) {
  if (a.numel() == 0 || b.numel() == 0) return 0;
  if (!a.is_range() && !b.is_range()) {
    uint64_t n = 1;
    for (size_t d = 0; d < a.shape().size(); ++d) {
      const uint64_t s = std::max(a.offset()[d], b.offset()[d]);
      const uint64_t e = std::min(a.offset()[d] + a.extent()[d], b.offset()[d] + b.extent()[d]);
      if (s >= e) return 0;
      n *= e - s;
    }
    return n;
  }
  uint64_t n = 0;
  for (const auto &o : overlaps(a, b)) n += o.len;
  return n;
}

Tiling check_tiling(const std::vector<const Piece *> &pieces, uint64_t numel) {
  // (first element of the piece's next run, piece index, run index)
  using Next = std::tuple<uint64_t, size_t, uint64_t>;
  std::priority_queue<Next, std::vector<Next>, std::greater<Next>> heap;
  for (size_t i = 0; i < pieces.size(); ++i)
    if (pieces[i]->num_runs() > 0) heap.emplace(pieces[i]->run_at(0).global, i, 0);
  Tiling gap;
  bool have_gap = false;
  uint64_t pos = 0;    // every element below pos is held exactly once
  size_t last = 0;     // the piece holding element pos - 1
  while (!heap.empty()) {
    const auto [start, i, k] = heap.top();
    heap.pop();
    const Run r = pieces[i]->run_at(k);
    if (start < pos) {
      Tiling t;
      t.verdict = Tiling::Verdict::Overlap;
      t.a = last;
      t.b = i;
      t.at = start;
      return t;
    }
    if (start > pos && !have_gap) {
      have_gap = true;
      gap.verdict = Tiling::Verdict::Gap;
      gap.at = pos;
    }
    pos = r.global + r.len;
    last = i;
    if (k + 1 < pieces[i]->num_runs()) heap.emplace(pieces[i]->run_at(k + 1).global, i, k + 1);
  }
  if (!have_gap && pos < numel) {
    have_gap = true;
    gap.verdict = Tiling::Verdict::Gap;
    gap.at = pos;
  }
  return have_gap ? gap : Tiling{};
}

}  // namespace smp::ckpt
