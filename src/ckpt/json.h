// A small strict JSON parser and writer for safetensors headers, checkpoint
// indexes and manifests. Strict because these files are untrusted input:
// duplicate keys, trailing garbage, bad escapes, invalid UTF-8, numbers
// that do not fit, and nesting deeper than a fixed bound are all rejected
// (a safetensors header with two entries of the same name is corrupt, and
// a lenient parser that keeps the last one would hide it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace smp::ckpt::json {

struct Value {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool b = false;
  // Numbers: `text` holds the literal; `is_uint` says it is a non-negative
  // integer that fits uint64_t, then in `u`.
  std::string text;
  bool is_uint = false;
  uint64_t u = 0;
  std::vector<Value> items;                           // Array
  std::vector<std::pair<std::string, Value>> fields;  // Object, in file order

  const Value *find(const std::string &key) const;  // Object field or nullptr
};

// Parses the whole of text as one JSON value. Throws smp::Error
// (Status::Corrupt) with `what` and the byte position in the message.
Value parse(const char *text, size_t n, const std::string &what);

// Appends s as a JSON string literal (quotes, escapes; bytes >= 0x80 are
// passed through, so valid UTF-8 stays valid).
void write_string(std::string &out, const std::string &s);

}  // namespace smp::ckpt::json
