// The strict JSON parser: what it accepts and, above all, what it rejects.
#include "ckpt/json.h"

#include <gtest/gtest.h>

#include <string>

#include "common/error.h"

using smp::ckpt::json::Json;
using smp::ckpt::json::parse;

namespace {

Json p(const std::string &s) { return parse(s.data(), s.size(), "test"); }

void rejected(const std::string &s) {
  try {
    p(s);
    ADD_FAILURE() << "accepted: " << s;
  } catch (const smp::Error &e) {
    EXPECT_EQ(e.status(), smp::Status::Corrupt) << s;
  }
}

}  // namespace

TEST(Json, ParsesValues) {
  const Json v = p(R"( {"a": [1, 2.5, -3, 1e3, true, false, null], "b": {"c": "x\"\\\/\n\u00e9\ud83d\ude00"}} )");
  ASSERT_TRUE(v.is_object());
  const Json &a = v.at("a");
  ASSERT_EQ(a.size(), 7u);
  EXPECT_TRUE(a[0].is_number_unsigned());
  EXPECT_EQ(a[0].get<uint64_t>(), 1u);
  EXPECT_FALSE(a[1].is_number_unsigned());
  EXPECT_FALSE(a[2].is_number_unsigned());
  EXPECT_FALSE(a[3].is_number_unsigned());
  EXPECT_TRUE(a[4].get<bool>());
  EXPECT_TRUE(a[6].is_null());
  EXPECT_EQ(v.at("b").at("c").get<std::string>(), "x\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(p("18446744073709551615").get<uint64_t>(), UINT64_MAX);
  EXPECT_FALSE(p("18446744073709551616").is_number_unsigned());  // does not fit: not an offset
  EXPECT_EQ(p("\"caf\xc3\xa9\"").get<std::string>(), "caf\xc3\xa9");
}

TEST(Json, RejectsMalformed) {
  for (const char *s : {"", "{", "}", "{\"a\":1,}", "[1,]", "{\"a\" 1}", "{a:1}", "{\"a\":1}x", "01", "1.", ".5",
                        "-", "1e", "tru", "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00x\"",
                        "\"a\tb\"", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
                        "\"\xe2\x82\"", "{\"a\":1,\"a\":2}", "[1 2]", "NaN", "+1"})
    rejected(s);
  rejected(std::string(100, '[') + std::string(100, ']'));  // nesting bound
  EXPECT_NO_THROW(p(std::string(30, '[') + std::string(30, ']')));
}

namespace {

std::string error_of(const std::string &s) {
  try {
    p(s);
  } catch (const smp::Error &e) {
    return e.what();
  }
  return "accepted";
}

bool has(const std::string &s, const std::string &part) { return s.find(part) != std::string::npos; }

}  // namespace

// The checks nlohmann does not make (duplicates, depth, a byte order mark)
// and its own, all reported as "WHAT: invalid JSON at byte N: ...".
TEST(Json, MessagesNameTheFault) {
  const std::string dup = error_of("{\"a\":1,\"a\":2}");
  EXPECT_TRUE(has(dup, "test: invalid JSON at byte ") && has(dup, "duplicate key \"a\"")) << dup;
  std::string big = "{";
  for (int i = 0; i < 20; ++i) big += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  big += "\"k3\":0}";
  EXPECT_TRUE(has(error_of(big), "duplicate key \"k3\" in the object ending here")) << error_of(big);
  const std::string deep = error_of(std::string(100, '[') + std::string(100, ']'));
  EXPECT_TRUE(has(deep, "nesting deeper than 64")) << deep;
  EXPECT_TRUE(has(error_of("\xef\xbb\xbf{}"), "invalid JSON at byte 0")) << error_of("\xef\xbb\xbf{}");
  const std::string utf8 = error_of("\"\xff\"");
  EXPECT_TRUE(has(utf8, "invalid JSON at byte") && has(utf8, "UTF-8") && !has(utf8, "\xff")) << utf8;
  EXPECT_TRUE(has(error_of("{\"a\":1}x"), "expected end of input")) << error_of("{\"a\":1}x");
}

TEST(Json, KeepsFileOrderAndWritesOnlyUtf8) {
  const Json v = p(R"({"z": 1, "a": 2, "m": 3})");
  std::string keys;
  for (const auto &f : v.items()) keys += f.key();
  EXPECT_EQ(keys, "zam");
  EXPECT_EQ(smp::ckpt::json::dump(v, "t"), R"({"z":1,"a":2,"m":3})");
  try {
    smp::ckpt::json::dump(Json("caf\xe9"), "t");
    ADD_FAILURE() << "wrote invalid UTF-8";
  } catch (const smp::Error &e) {
    EXPECT_EQ(e.status(), smp::Status::InvalidArgument);
  }
}
