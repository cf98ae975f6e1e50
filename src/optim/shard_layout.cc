#include "optim/shard_layout.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/error.h"
#include "common/hash.h"

namespace smp::optim {

namespace {

bool optimizable(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

}  // namespace

bool Piece::operator==(const Piece &o) const {
  return rank == o.rank && tensor == o.tensor && bucket == o.bucket &&
         tensor_offset == o.tensor_offset && flat_offset == o.flat_offset &&
         shard_offset == o.shard_offset && length == o.length;
}

size_t align_elems(DType dtype, size_t align_bytes) {
  return std::max<size_t>(1, align_bytes / dtype_size(dtype));
}

ShardLayout::ShardLayout(std::vector<TensorSpec> tensors, int group_size,
                         size_t bucket_cap_bytes, size_t align_bytes)
    : tensors_(std::move(tensors)), n_(group_size), cap_(bucket_cap_bytes), align_(align_bytes) {
  if (n_ < 1) invalid("shard layout: group size " + std::to_string(n_) + " must be >= 1");
  if (cap_ == 0) invalid("shard layout: bucket cap must be > 0 bytes");
  if (align_ < 4 || (align_ & (align_ - 1)) != 0)
    invalid("shard layout: alignment " + std::to_string(align_) +
            " bytes must be a power of two >= 4");
  std::set<std::string> names;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorSpec &t = tensors_[i];
    const std::string which = "tensor #" + std::to_string(i) + " ('" + t.name + "')";
    if (t.name.empty()) invalid("shard layout: tensor #" + std::to_string(i) + " has no name");
    if (!names.insert(t.name).second)
      invalid("shard layout: " + which + ": the name is registered twice");
    if (!optimizable(t.dtype))
      invalid("shard layout: " + which + " has dtype " + dtype_name(t.dtype) +
              "; the optimizer takes F32, BF16 or F16 tensors");
  }

  // Fill buckets in registration order, one open bucket per dtype. A bucket
  // is created when its first tensor arrives, so bucket order follows the
  // first tensor of each bucket: deterministic and independent of hashing.
  place_.resize(tensors_.size());
  std::map<int, size_t> open;  // dtype -> index of its open bucket
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorSpec &t = tensors_[i];
    total_ += t.count;
    if (t.count == 0) continue;
    const int key = static_cast<int>(t.dtype);
    auto it = open.find(key);
    const size_t bytes = t.count * dtype_size(t.dtype);
    if (it != open.end()) {
      const Bucket &b = buckets_[it->second];
      if (b.used * dtype_size(b.dtype) + bytes > cap_) {
        open.erase(it);
        it = open.end();
      }
    }
    if (it == open.end()) {
      buckets_.emplace_back();
      buckets_.back().dtype = t.dtype;
      it = open.emplace(key, buckets_.size() - 1).first;
    }
    Bucket &b = buckets_[it->second];
    place_[i].bucket = it->second;
    place_[i].flat = b.used;  // relative for now
    b.tensors.push_back(i);
    b.used += t.count;
  }

  // Pad and place the buckets back to back.
  const size_t n = static_cast<size_t>(n_);
  for (Bucket &b : buckets_) {
    b.elems = round_up(b.used, n * align_elems(b.dtype, align_));
    b.flat_offset = flat_;
    b.byte_offset = flat_bytes_;
    b.shard_offset = flat_ / n;
    flat_ += b.elems;
    flat_bytes_ += b.elems * dtype_size(b.dtype);
  }
  for (Place &p : place_)
    if (p.bucket != kNoBucket) p.flat += buckets_[p.bucket].flat_offset;
}

size_t ShardLayout::owned_begin(int rank, size_t b) const {
  if (rank < 0 || rank >= n_)
    invalid("shard layout: rank " + std::to_string(rank) + " outside a group of " +
            std::to_string(n_));
  const Bucket &bk = buckets_.at(b);
  return bk.flat_offset + static_cast<size_t>(rank) * bk.slice(n_);
}

void ShardLayout::pieces_of_bucket(int rank, size_t b, std::vector<Piece> &out) const {
  const Bucket &bk = buckets_[b];
  const size_t lo = owned_begin(rank, b), hi = lo + bk.slice(n_);
  for (size_t i : bk.tensors) {
    const size_t t0 = place_[i].flat, t1 = t0 + tensors_[i].count;
    const size_t a = std::max(lo, t0), e = std::min(hi, t1);
    if (a >= e) continue;
    Piece p;
    p.rank = rank;
    p.tensor = i;
    p.bucket = b;
    p.tensor_offset = a - t0;
    p.flat_offset = a;
    p.shard_offset = bk.shard_offset + (a - lo);
    p.length = e - a;
    out.push_back(p);
  }
}

std::vector<Piece> ShardLayout::pieces(int rank) const {
  std::vector<Piece> out;
  for (size_t b = 0; b < buckets_.size(); ++b) pieces_of_bucket(rank, b, out);
  return out;
}

std::vector<Piece> ShardLayout::tensor_pieces(size_t i) const {
  std::vector<Piece> out;
  const size_t b = place_.at(i).bucket;
  if (b == kNoBucket) return out;
  for (int r = 0; r < n_; ++r) {
    std::vector<Piece> all;
    pieces_of_bucket(r, b, all);
    for (const Piece &p : all)
      if (p.tensor == i) out.push_back(p);
  }
  return out;  // ranks own increasing flat ranges, so this is tensor order
}

uint64_t ShardLayout::tensor_hash(const TensorSpec &t) {
  Fnv1a f;
  f.str(t.name);
  f.u64(t.count);
  f.u64(static_cast<uint64_t>(t.dtype));
  return f.h;
}

uint64_t ShardLayout::fingerprint() const {
  Fnv1a f;
  f.u64(tensors_.size());
  for (const TensorSpec &t : tensors_) f.u64(tensor_hash(t));
  f.u64(static_cast<uint64_t>(n_));
  f.u64(cap_);
  f.u64(align_);
  return f.h;
}

}  // namespace smp::optim
