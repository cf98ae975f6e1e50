#include "ckpt/json.h"

#include <algorithm>

#include "common/error.h"

namespace smp::ckpt::json {
namespace {

constexpr int kMaxDepth = 64;
constexpr size_t kSmallObject = 16;

class Parser {
 public:
  Parser(const char *p, size_t n, const std::string &what) : p_(p), n_(n), what_(what) {}

  Value run() {
    Value v = value(0);
    ws();
    if (i_ != n_) fail("unexpected data after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string &msg) const {
    throw Error(Status::Corrupt, what_ + ": invalid JSON at byte " + std::to_string(i_) + ": " + msg);
  }
  void ws() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r')) ++i_;
  }
  char peek() {
    if (i_ >= n_) fail("unexpected end of text");
    return p_[i_];
  }
  void expect(const char *lit) {
    for (const char *c = lit; *c; ++c, ++i_)
      if (i_ >= n_ || p_[i_] != *c) fail(std::string("expected '") + lit + "'");
  }

  Value value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
    ws();
    Value v;
    char c = peek();
    if (c == '{') {
      v.kind = Value::Kind::Object;
      ++i_;
      ws();
      if (peek() == '}') { ++i_; return v; }
      for (;;) {
        ws();
        if (peek() != '"') fail("expected a string key");
        std::string key = string();
        // Duplicates: compared at once in small objects; a large one (a
        // safetensors header of many tensors) is sorted once when it closes,
        // since comparing every key with every other is quadratic.
        if (v.fields.size() < kSmallObject)
          for (const auto &f : v.fields)
            if (f.first == key) fail("duplicate key \"" + key + "\"");
        ws();
        if (peek() != ':') fail("expected ':'");
        ++i_;
        v.fields.emplace_back(std::move(key), value(depth + 1));
        ws();
        c = peek();
        ++i_;
        if (c == '}') {
          if (v.fields.size() > kSmallObject) check_unique(v);
          return v;
        }
        if (c != ',') fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.kind = Value::Kind::Array;
      ++i_;
      ws();
      if (peek() == ']') { ++i_; return v; }
      for (;;) {
        v.items.push_back(value(depth + 1));
        ws();
        c = peek();
        ++i_;
        if (c == ']') return v;
        if (c != ',') fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.kind = Value::Kind::String;
      v.text = string();
      return v;
    }
    if (c == 't') { expect("true"); v.kind = Value::Kind::Bool; v.b = true; return v; }
    if (c == 'f') { expect("false"); v.kind = Value::Kind::Bool; return v; }
    if (c == 'n') { expect("null"); return v; }
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail(std::string("unexpected character"));
  }

  void check_unique(const Value &v) {
    std::vector<const std::string *> keys;
    keys.reserve(v.fields.size());
    for (const auto &f : v.fields) keys.push_back(&f.first);
    std::sort(keys.begin(), keys.end(), [](const std::string *a, const std::string *b) { return *a < *b; });
    for (size_t k = 1; k < keys.size(); ++k)
      if (*keys[k] == *keys[k - 1]) fail("duplicate key \"" + *keys[k] + "\" in the object ending here");
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  Value number() {
    Value v;
    v.kind = Value::Kind::Number;
    const size_t start = i_;
    bool neg = false, integral = true;
    if (p_[i_] == '-') { neg = true; ++i_; }
    if (i_ >= n_ || !digit(p_[i_])) fail("bad number");
    if (p_[i_] == '0') {
      ++i_;
    } else {
      while (i_ < n_ && digit(p_[i_])) ++i_;
    }
    if (i_ < n_ && p_[i_] == '.') {
      integral = false;
      ++i_;
      if (i_ >= n_ || !digit(p_[i_])) fail("bad number");
      while (i_ < n_ && digit(p_[i_])) ++i_;
    }
    if (i_ < n_ && (p_[i_] == 'e' || p_[i_] == 'E')) {
      integral = false;
      ++i_;
      if (i_ < n_ && (p_[i_] == '+' || p_[i_] == '-')) ++i_;
      if (i_ >= n_ || !digit(p_[i_])) fail("bad number");
      while (i_ < n_ && digit(p_[i_])) ++i_;
    }
    v.text.assign(p_ + start, i_ - start);
    if (integral && !neg) {
      uint64_t u = 0;
      bool fits = true;
      for (char d : v.text) {
        const uint64_t k = static_cast<uint64_t>(d - '0');
        if (u > (UINT64_MAX - k) / 10) { fits = false; break; }
        u = u * 10 + k;
      }
      v.is_uint = fits;
      v.u = fits ? u : 0;
    }
    return v;
  }

  unsigned hex4() {
    unsigned x = 0;
    for (int k = 0; k < 4; ++k, ++i_) {
      char c = peek();
      x <<= 4;
      if (c >= '0' && c <= '9') x |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') x |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') x |= static_cast<unsigned>(c - 'A' + 10);
      else fail("bad \\u escape");
    }
    return x;
  }

  static void utf8(std::string &out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  // One UTF-8 sequence starting at i_, validated (no overlongs, no
  // surrogates, <= U+10FFFF), copied to out.
  void raw_utf8(std::string &out) {
    const auto b0 = static_cast<unsigned char>(p_[i_]);
    int len;
    unsigned cp;
    if (b0 < 0x80) { out += static_cast<char>(b0); ++i_; return; }
    if ((b0 & 0xe0) == 0xc0) { len = 2; cp = b0 & 0x1f; }
    else if ((b0 & 0xf0) == 0xe0) { len = 3; cp = b0 & 0x0f; }
    else if ((b0 & 0xf8) == 0xf0) { len = 4; cp = b0 & 0x07; }
    else fail("invalid UTF-8");
    if (i_ + static_cast<size_t>(len) > n_) fail("truncated UTF-8");
    for (int k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(p_[i_ + static_cast<size_t>(k)]);
      if ((b & 0xc0) != 0x80) fail("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3f);
    }
    static const unsigned kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) fail("invalid UTF-8");
    out.append(p_ + i_, static_cast<size_t>(len));
    i_ += static_cast<size_t>(len);
  }

  std::string string() {
    ++i_;  // opening quote
    std::string out;
    for (;;) {
      const char c = peek();
      if (c == '"') { ++i_; return out; }
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') { raw_utf8(out); continue; }
      ++i_;
      const char e = peek();
      ++i_;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xd800 && cp <= 0xdbff) {
            expect("\\u");
            const unsigned lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) fail("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            fail("unpaired surrogate");
          }
          utf8(out, cp);
          break;
        }
        default: --i_; fail("bad escape");
      }
    }
  }

  const char *p_;
  size_t n_;
  size_t i_ = 0;
  const std::string &what_;
};

}  // namespace

const Value *Value::find(const std::string &key) const {
  for (const auto &f : fields)
    if (f.first == key) return &f.second;
  return nullptr;
}

Value parse(const char *text, size_t n, const std::string &what) { return Parser(text, n, what).run(); }

void write_string(std::string &out, const std::string &s) {
  static const char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace smp::ckpt::json
