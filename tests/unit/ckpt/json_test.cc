// The strict JSON parser: what it accepts and, above all, what it rejects.
#include "ckpt/json.h"

#include <gtest/gtest.h>

#include <string>

#include "common/error.h"

using smp::ckpt::json::parse;
using smp::ckpt::json::Value;

namespace {

Value p(const std::string &s) { return parse(s.data(), s.size(), "test"); }

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
  const Value v = p(R"( {"a": [1, 2.5, -3, 1e3, true, false, null], "b": {"c": "x\"\\\/\n\u00e9\ud83d\ude00"}} )");
  ASSERT_EQ(v.kind, Value::Kind::Object);
  const Value &a = *v.find("a");
  ASSERT_EQ(a.items.size(), 7u);
  EXPECT_TRUE(a.items[0].is_uint);
  EXPECT_EQ(a.items[0].u, 1u);
  EXPECT_FALSE(a.items[1].is_uint);
  EXPECT_FALSE(a.items[2].is_uint);
  EXPECT_FALSE(a.items[3].is_uint);
  EXPECT_TRUE(a.items[4].b);
  EXPECT_EQ(a.items[6].kind, Value::Kind::Null);
  EXPECT_EQ(v.find("b")->find("c")->text, "x\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(p("18446744073709551615").u, UINT64_MAX);
  EXPECT_FALSE(p("18446744073709551616").is_uint);  // does not fit: not an offset
  EXPECT_EQ(p("\"caf\xc3\xa9\"").text, "caf\xc3\xa9");
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
