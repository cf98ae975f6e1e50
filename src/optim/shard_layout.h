// Flat, bucketed, padded layout of a list of parameter tensors, sharded over
// a group of n ranks (ZeRO-1). Pure: no MPI, no memory, only offsets.
//
// Tensors are placed in registration order into buckets of one dtype each
// (communication buffers are typed); a bucket is closed once the next tensor
// would push it past the byte cap (a tensor larger than the cap gets a
// bucket of its own; tensors are never split across buckets). Each bucket is
// padded so that it splits into n equal slices whose size is a multiple of
// `align_bytes / dtype_size` elements: every rank's slice then starts on an
// `align_bytes` boundary both in the bucket's dtype and in the float32
// optimizer state. Rank r owns slice r of every bucket; its shard is the
// concatenation of its slices in bucket order.
//
// The layout depends on nothing but (tensors, n, cap, alignment), so every
// rank computes the same one: peers would pair the wrong buckets otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace smp::optim {

struct TensorSpec {
  std::string name;
  size_t count = 0;  // elements; 0 is allowed (the tensor owns nothing)
  DType dtype = DType::F32;
};

struct Bucket {
  DType dtype = DType::F32;
  std::vector<size_t> tensors;  // indices into the tensor list, in order
  size_t flat_offset = 0;       // first element in the flat (element) space
  size_t byte_offset = 0;       // first byte in a flat buffer of mixed dtypes
  size_t used = 0;              // elements holding tensor data
  size_t elems = 0;             // used + padding; a multiple of n * align
  size_t shard_offset = 0;      // where this bucket's slice starts in a shard
  size_t slice(int n) const { return elems / static_cast<size_t>(n); }
};

// A run of one tensor inside one rank's shard.
struct Piece {
  int rank = 0;
  size_t tensor = 0;         // index in registration order
  size_t bucket = 0;
  size_t tensor_offset = 0;  // first element of the run within the tensor
  size_t flat_offset = 0;    // the same element in the flat space
  size_t shard_offset = 0;   // the same element within the owner's shard
  size_t length = 0;
  bool operator==(const Piece &o) const;
};

class ShardLayout {
 public:
  static constexpr size_t kNoBucket = static_cast<size_t>(-1);

  // Throws smp::Error(InvalidArgument) for n < 1, a zero cap, an alignment
  // that is not a power of two >= 8, a dtype other than F32/BF16/F16, an
  // empty or duplicate name.
  ShardLayout(std::vector<TensorSpec> tensors, int group_size, size_t bucket_cap_bytes,
              size_t align_bytes = 64);

  int group_size() const { return n_; }
  size_t bucket_cap_bytes() const { return cap_; }
  size_t align_bytes() const { return align_; }
  const std::vector<TensorSpec> &tensors() const { return tensors_; }
  const std::vector<Bucket> &buckets() const { return buckets_; }

  size_t total_elems() const { return total_; }     // sum of tensor counts
  size_t flat_elems() const { return flat_; }       // with padding
  size_t flat_bytes() const { return flat_bytes_; }
  size_t shard_elems() const { return flat_ / static_cast<size_t>(n_); }  // per rank

  // Where tensor i lives: its bucket (kNoBucket for an empty tensor) and
  // its first element in the flat space.
  size_t tensor_bucket(size_t i) const { return place_.at(i).bucket; }
  size_t tensor_flat_offset(size_t i) const { return place_.at(i).flat; }

  // Rank r's slice of bucket b, as [begin, end) in the flat space.
  size_t owned_begin(int rank, size_t b) const;
  size_t owned_end(int rank, size_t b) const { return owned_begin(rank, b) + buckets_[b].slice(n_); }

  // Every piece rank r owns, in shard order.
  std::vector<Piece> pieces(int rank) const;
  // Every piece of tensor i, over all ranks, in tensor order.
  std::vector<Piece> tensor_pieces(size_t i) const;

  // 64-bit FNV-1a over the tensor list (names, counts, dtypes) and the
  // layout parameters: equal on two ranks iff they would build the same
  // layout (up to hash collisions).
  uint64_t fingerprint() const;
  // Hash of one tensor's (name, count, dtype), for naming a mismatch.
  static uint64_t tensor_hash(const TensorSpec &t);

 private:
  struct Place {
    size_t bucket = kNoBucket;
    size_t flat = 0;
  };
  void pieces_of_bucket(int rank, size_t b, std::vector<Piece> &out) const;

  std::vector<TensorSpec> tensors_;
  int n_;
  size_t cap_, align_;
  std::vector<Bucket> buckets_;
  std::vector<Place> place_;
  size_t total_ = 0, flat_ = 0, flat_bytes_ = 0;
};

// Elements per aligned slice unit for dtype: align_bytes / dtype_size.
size_t align_elems(DType dtype, size_t align_bytes);

}  // namespace smp::optim
