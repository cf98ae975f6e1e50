// Which elements of a global tensor a rank holds, and the row-major "runs"
// they map to. Pure index math (no I/O, no MPI), shared by the gather, the
// sharded index and the resharding loader.
//
// A piece is a box [offset, offset + extent) of the global shape
// (pipeline stages own whole tensors, tensor-parallel ranks a slice along
// one dimension), or a range [begin, begin + count) of such a box's
// row-major order: a sharded optimizer cuts the flattened local parameters
// anywhere, so a rank's optimizer state is a range of its tensor-parallel
// box (a range of the whole tensor when tp = 1). It is stored locally as a
// contiguous row-major buffer. Every copy between two layouts reduces to
// intersecting runs: maximal spans of consecutive global elements that are
// also consecutive locally.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace smp::ckpt {

struct Run {
  uint64_t global = 0;  // first element, row-major index in the global tensor
  uint64_t local = 0;   // first element, index in the piece's local buffer
  uint64_t len = 0;     // elements
};

class Piece {
 public:
  Piece() = default;
  // Throw InvalidArgument (naming `what`) if the piece leaves the shape or
  // the element count overflows.
  static Piece box(const std::vector<uint64_t> &shape, const std::vector<uint64_t> &offset,
                   const std::vector<uint64_t> &extent, const std::string &what);
  // Elements [begin, begin + count) of the box, in its row-major order.
  static Piece box_range(const std::vector<uint64_t> &shape, const std::vector<uint64_t> &offset,
                         const std::vector<uint64_t> &extent, uint64_t begin, uint64_t count,
                         const std::string &what);
  // Elements [begin, begin + count) of the whole tensor, row-major.
  static Piece flat(const std::vector<uint64_t> &shape, uint64_t begin, uint64_t count,
                    const std::string &what);
  static Piece whole(const std::vector<uint64_t> &shape, const std::string &what);

  // True when the piece is a range of its box rather than the whole box.
  bool is_range() const { return ranged_; }
  const std::vector<uint64_t> &shape() const { return shape_; }
  const std::vector<uint64_t> &offset() const { return offset_; }
  const std::vector<uint64_t> &extent() const { return extent_; }
  uint64_t range_begin() const { return begin_; }  // in the box's row-major order
  uint64_t numel() const { return numel_; }
  uint64_t box_numel() const { return box_numel_; }
  uint64_t global_numel() const { return global_numel_; }
  // The local buffer's shape as a safetensors file stores it: the extent
  // of a box, [count] for a range.
  std::vector<uint64_t> local_shape() const;
  // Global flat bounds of the piece: first element, one past the last.
  uint64_t lo() const { return lo_; }
  uint64_t hi() const { return hi_; }

  size_t num_runs() const { return static_cast<size_t>(runs_); }
  // The i-th run (i < num_runs()); runs ascend in global order.
  Run run_at(uint64_t i) const { return run(i); }
  // Runs overlapping the global range [from, to), clipped to it, in
  // increasing global order.
  std::vector<Run> runs_in(uint64_t from, uint64_t to) const;

  bool same_elements(const Piece &o) const;  // same shape and same elements
  // "[0:4, 2:6] of [8, 8]", "elements [10, 20) of [0:8, 0:8] of [8, 8]"
  std::string describe() const;

 private:
  Run run(uint64_t i) const;  // the i-th run the range touches, clipped to it
  void finish();

  std::vector<uint64_t> shape_, offset_, extent_, stride_;
  bool ranged_ = false;
  uint64_t begin_ = 0, numel_ = 0, box_numel_ = 0, global_numel_ = 0;
  uint64_t lo_ = 0, hi_ = 0;
  size_t inner_ = 0;       // the box's runs are contiguous over dims >= inner_
  uint64_t run_len_ = 0;   // elements per run of the box
  uint64_t first_ = 0;     // first box run the range touches
  uint64_t runs_ = 0;      // box runs the range touches
};

// An overlap of two pieces of the same tensor: len elements at a_local in
// a's buffer and b_local in b's buffer.
struct Overlap {
  uint64_t global = 0, a_local = 0, b_local = 0, len = 0;
};
std::vector<Overlap> overlaps(const Piece &a, const Piece &b);
// Elements a and b have in common (cheap for two boxes).
uint64_t overlap_count(const Piece &a, const Piece &b);

// Whether pieces of one tensor of `numel` elements tile it exactly: every
// element held by exactly one piece. Pieces are always inside their shape
// (Piece checks that on construction), so overlap and gap are the only
// ways to fail. The proof merges the pieces' runs in global order (a heap
// over the pieces' next runs): O(R log P) for R runs in P pieces, where a
// pairwise comparison would be O(P^2) and miss nothing more. Zero-element
// pieces hold nothing and never overlap.
struct Tiling {
  enum class Verdict { Exact, Overlap, Gap };
  Verdict verdict = Verdict::Exact;
  // Overlap: pieces a and b (indices into the argument) both hold element
  // `at`, the first such element. Gap: element `at` is the first that no
  // piece holds. An overlap anywhere is reported in preference to a gap.
  size_t a = 0, b = 0;
  uint64_t at = 0;
};
Tiling check_tiling(const std::vector<const Piece *> &pieces, uint64_t numel);

}  // namespace smp::ckpt
