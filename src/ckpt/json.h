// JSON for safetensors headers, checkpoint indexes and manifests, through
// nlohmann::json. Parsing is strict because these files are untrusted
// input: on top of nlohmann's own checks (trailing garbage, bad escapes,
// invalid UTF-8, malformed numbers), duplicate keys and nesting deeper than
// a fixed bound are rejected (a safetensors header with two entries of the
// same name is corrupt, and a lenient parser that keeps the last one would
// hide it).
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

namespace smp::ckpt::json {

// Objects keep their keys in file (or insertion) order: a safetensors
// header's entries are checked and listed in the order they were written.
using Json = nlohmann::ordered_json;

// Parses the whole of text as one JSON value. Throws smp::Error
// (Status::Corrupt) with `what` and the byte position in the message.
// Non-negative integers that fit uint64_t are is_number_unsigned(); larger
// ones become floats, so a caller asking for an offset refuses them.
Json parse(const char *text, size_t n, const std::string &what);

// Appends key: value to object obj without nlohmann's key search (an
// ordered_json object is a vector searched linearly, so building a header
// of many tensors through operator[] would be quadratic). The caller
// guarantees the key is new.
void append(Json &obj, std::string key, Json value);

// Serializes v (indent < 0: compact, one line). A string that is not valid
// UTF-8 (a tensor or file name) cannot be written as JSON: Status::
// InvalidArgument naming `what`.
std::string dump(const Json &v, const std::string &what, int indent = -1);

}  // namespace smp::ckpt::json
