#include "comm/validate.h"

#include <cstdint>
#include <limits>
#include <string>

#include "common/error.h"

namespace smp::comm::validate {

static std::string S(const char *op) { return std::string(op) + ": "; }

void dtype(const char *op, DType t) {
  if (!dtype_valid(static_cast<int>(t)))
    invalid(S(op) + "dtype " + std::to_string(static_cast<int>(t)) + " is not a valid dtype");
}

void reduce_op(const char *op, ReduceOp r) {
  if (!reduce_op_valid(static_cast<int>(r)))
    invalid(S(op) + "op " + std::to_string(static_cast<int>(r)) +
            " is not a valid reduction (SUM, AVG, MAX, MIN, PROD)");
}

void pointer(const char *op, const char *name, const void *p, size_t count) {
  if (p == nullptr && count > 0)
    invalid(S(op) + name + " is NULL but count is " + std::to_string(count));
}

size_t bytes(const char *op, const char *name, size_t count, size_t multiplier, DType t) {
  const size_t es = dtype_size(t);
  const size_t limit = static_cast<size_t>(std::numeric_limits<int64_t>::max());
  if (multiplier != 0 && count > limit / multiplier / es)
    invalid(S(op) + name + " " + std::to_string(count) + (multiplier > 1 ? " x " + std::to_string(multiplier) : "") +
            " elements of " + dtype_name(t) + " overflow the addressable size");
  return count * multiplier * es;
}

void rank(const char *op, const char *name, int r, int size) {
  if (r < 0 || r >= size)
    invalid(S(op) + name + " " + std::to_string(r) + " is out of range: the group has " +
            std::to_string(size) + " rank" + (size == 1 ? "" : "s") + " (0.." +
            std::to_string(size - 1) + ")");
}

void tag(const char *op, int t, int max_tag) {
  if (t < 0 || t > max_tag)
    invalid(S(op) + "tag " + std::to_string(t) + " is out of range (0.." + std::to_string(max_tag) + ")");
}

void no_overlap(const char *op, const void *s, size_t sbytes, const void *r, size_t rbytes,
                const void *in_place_send) {
  if (s == nullptr || r == nullptr || sbytes == 0 || rbytes == 0) return;
  if (s == in_place_send) return;
  const auto a = reinterpret_cast<uintptr_t>(s), b = reinterpret_cast<uintptr_t>(r);
  if (a < b + rbytes && b < a + sbytes)
    invalid(S(op) + "sendbuf and recvbuf overlap without being the in-place form");
}

}  // namespace smp::comm::validate
