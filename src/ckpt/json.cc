#include "ckpt/json.h"

#include <algorithm>
#include <iterator>
#include <vector>

#include "common/error.h"

namespace smp::ckpt::json {
namespace {

constexpr int kMaxDepth = 64;
constexpr size_t kSmallObject = 16;

// An input iterator over the text that counts the bytes nlohmann's lexer
// has read, so that errors found by the SAX handler (duplicates, depth)
// name a byte position like the lexer's own errors do.
class Cursor {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char *;
  using reference = const char &;

  Cursor(const char *p, size_t *read) : p_(p), read_(read) {}
  reference operator*() const { return *p_; }
  Cursor &operator++() {
    ++p_;
    ++*read_;
    return *this;
  }
  bool operator==(const Cursor &o) const { return p_ == o.p_; }
  bool operator!=(const Cursor &o) const { return p_ != o.p_; }

 private:
  const char *p_;
  size_t *read_;
};

// Builds the document as nlohmann's DOM parser would, and adds the checks
// it lacks: duplicate keys and a nesting bound. Every failure throws
// smp::Error (Status::Corrupt) from inside the parse.
class Builder {
 public:
  Builder(const std::string &what, const size_t *read) : what_(what), read_(read) {}
  Json take() { return std::move(root_); }

  [[noreturn]] void fail(size_t at, const std::string &msg) const {
    throw Error(Status::Corrupt, what_ + ": invalid JSON at byte " + std::to_string(at) + ": " + msg);
  }
  [[noreturn]] void fail(const std::string &msg) const { fail(*read_, msg); }

  bool null() { return add(Json(nullptr)); }
  bool boolean(bool b) { return add(Json(b)); }
  bool number_integer(Json::number_integer_t v) { return add(Json(v)); }
  bool number_unsigned(Json::number_unsigned_t v) { return add(Json(v)); }
  bool number_float(Json::number_float_t v, const Json::string_t &) { return add(Json(v)); }
  bool string(Json::string_t &s) { return add(Json(std::move(s))); }
  bool binary(Json::binary_t &) { fail("binary value"); }  // not produced by the JSON lexer

  bool start_object(size_t) { return open(Json::object()); }
  bool start_array(size_t) { return open(Json::array()); }
  bool end_array() {
    open_.pop_back();
    return true;
  }
  bool key(Json::string_t &k) {
    // Duplicates: compared at once in small objects; a large one (a
    // safetensors header of many tensors) is sorted once when it closes,
    // since comparing every key with every other is quadratic.
    const auto &o = open_.back()->get_ref<const Json::object_t &>();
    if (o.size() < kSmallObject)
      for (const auto &f : o)
        if (f.first == k) fail("duplicate key \"" + k + "\"");
    key_ = std::move(k);
    return true;
  }
  bool end_object() {
    const auto &o = open_.back()->get_ref<const Json::object_t &>();
    if (o.size() > kSmallObject) check_unique(o);
    open_.pop_back();
    return true;
  }

  bool parse_error(size_t position, const std::string &, const nlohmann::detail::exception &ex) {
    fail(position, lexer_message(ex.what()));
  }

 private:
  // nlohmann's message less its prefix ("[json.exception.parse_error.101]
  // parse error at line 1, column 4: ", the position is given in bytes
  // instead) and less the input it quotes ("; last read: '...'"): raw
  // untrusted bytes have no place in an error message.
  static std::string lexer_message(std::string m) {
    const size_t tag = m.find("] ");
    if (tag != std::string::npos) m.erase(0, tag + 2);
    if (m.compare(0, 11, "parse error") == 0) {
      const size_t colon = m.find(": ");
      if (colon != std::string::npos) m.erase(0, colon + 2);
    }
    const size_t quoted = m.find("; last read: ");
    if (quoted != std::string::npos) {
      const size_t expected = m.rfind("; expected ");
      m.erase(quoted, expected == std::string::npos || expected < quoted ? std::string::npos : expected - quoted);
    }
    return m;
  }

  void check_depth() const {
    if (static_cast<int>(open_.size()) > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
  }

  // Places v where the parse is: the root, the next item of the open array
  // or the value of the last key. Returns where it lies.
  Json *place(Json v) {
    if (open_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Json &top = *open_.back();
    if (top.is_array()) {
      auto &a = top.get_ref<Json::array_t &>();
      a.push_back(std::move(v));
      return &a.back();
    }
    auto &o = top.get_ref<Json::object_t &>();
    o.emplace_back(std::move(key_), std::move(v));
    return &o.back().second;
  }
  bool add(Json v) {
    check_depth();
    place(std::move(v));
    return true;
  }
  bool open(Json v) {
    check_depth();
    open_.push_back(place(std::move(v)));
    return true;
  }

  void check_unique(const Json::object_t &o) const {
    std::vector<const std::string *> keys;
    keys.reserve(o.size());
    for (const auto &f : o) keys.push_back(&f.first);
    std::sort(keys.begin(), keys.end(), [](const std::string *a, const std::string *b) { return *a < *b; });
    for (size_t k = 1; k < keys.size(); ++k)
      if (*keys[k] == *keys[k - 1]) fail("duplicate key \"" + *keys[k] + "\" in the object ending here");
  }

  const std::string &what_;
  const size_t *read_;
  Json root_;
  // The open arrays and objects, innermost last. A pointer stays valid
  // while its container is open: only the innermost one grows.
  std::vector<Json *> open_;
  std::string key_;
};

}  // namespace

Json parse(const char *text, size_t n, const std::string &what) {
  size_t read = 0;
  Builder b(what, &read);
  // nlohmann skips a leading UTF-8 byte order mark; these files never
  // have one, and 0xEF cannot start a JSON value.
  if (n > 0 && static_cast<unsigned char>(text[0]) == 0xef) b.fail(0, "unexpected character");
  Json::sax_parse(Cursor(text, &read), Cursor(text + n, &read), &b, Json::input_format_t::json,
                  /*strict=*/true, /*ignore_comments=*/false);
  return b.take();
}

void append(Json &obj, std::string key, Json value) {
  obj.get_ref<Json::object_t &>().emplace_back(std::move(key), std::move(value));
}

std::string dump(const Json &v, const std::string &what, int indent) {
  try {
    return v.dump(indent);
  } catch (const nlohmann::json::type_error &) {  // 316: a string that is not UTF-8
    throw Error(Status::InvalidArgument, what + ": a name is not valid UTF-8, so cannot be written as JSON");
  }
}

}  // namespace smp::ckpt::json
