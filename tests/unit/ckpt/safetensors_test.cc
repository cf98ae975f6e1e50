// safetensors: round trips for every dtype, the exact byte layout the
// format prescribes (checked by hand-decoding, not by our reader), files
// written by hand read back, and corrupt files rejected with Corrupt.
#include "ckpt/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "common/error.h"
#include "test_util.h"

using namespace smp;
using namespace smp::ckpt;
using ckpt_test::TmpDir;

namespace {

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

std::string file_of(const std::string &header, const std::string &data) { return le64(header.size()) + header + data; }

Status status_of(const std::string &bytes) {
  try {
    parse_file(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size(), "mem");
    return Status::Success;
  } catch (const Error &e) {
    return e.status();
  }
}

const DType kAll[] = {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I8, DType::U8, DType::I32, DType::I64};

}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  TmpDir dir;
  std::mt19937 rng(1);
  std::vector<std::vector<char>> bufs;
  std::vector<TensorData> tensors;
  for (DType t : kAll) {
    TensorSpec s{std::string("t_") + dtype_name(t), t, {3, 5, 2}};
    bufs.emplace_back(s.bytes());
    for (auto &b : bufs.back()) b = static_cast<char>(rng());
    tensors.push_back({s, bufs.back().data()});
  }
  tensors.push_back({TensorSpec{"scalar", DType::F64, {}}, "\x00\x00\x00\x00\x00\x00\xf0\x3f"});  // 1.0
  tensors.push_back({TensorSpec{"empty", DType::F32, {0, 4}}, nullptr});
  const FileDigest d = write_file(dir / "a.safetensors", tensors, {{"format", "pt"}, {"k\"ey", "v\nal"}});
  EXPECT_EQ(d.size, ckpt_test::slurp(dir / "a.safetensors").size());

  Reader r(dir / "a.safetensors");
  ASSERT_EQ(r.header().tensors.size(), tensors.size());
  EXPECT_EQ(r.header().data_start % 8, 0u);  // header padded like the reference writer
  ASSERT_EQ(r.header().metadata.size(), 2u);
  EXPECT_EQ(r.header().metadata[1].first, "k\"ey");
  EXPECT_EQ(r.header().metadata[1].second, "v\nal");
  for (size_t i = 0; i < bufs.size(); ++i) {
    const TensorEntry *e = r.header().find(tensors[i].spec.name);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->smp_dtype, static_cast<int>(kAll[i]));
    EXPECT_EQ(e->shape, (std::vector<uint64_t>{3, 5, 2}));
    std::vector<char> back(bufs[i].size());
    r.read_tensor(e->name, back.data(), back.size());
    EXPECT_EQ(back, bufs[i]) << e->name;
  }
  double one = 0;
  r.read_tensor("scalar", &one, 8);
  EXPECT_EQ(one, 1.0);
  EXPECT_EQ(r.header().find("empty")->numel(), 0u);
}

TEST(Safetensors, ByteLayoutMatchesTheFormat) {
  TmpDir dir;
  const float v[3] = {1.0f, -2.0f, 0.5f};
  const uint16_t h[2] = {0x3c00, 0xc000};  // F16 1.0, -2.0
  write_file(dir / "b.safetensors", {{TensorSpec{"w", DType::F32, {3}}, v}, {TensorSpec{"h", DType::F16, {2}}, h}});
  const std::string f = ckpt_test::slurp(dir / "b.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(f[static_cast<size_t>(i)]);
  ASSERT_EQ((8 + n) % 8, 0u);
  ASSERT_EQ(f.size(), 8 + n + 12 + 4);
  const std::string header = f.substr(8, n);
  // Our writer lays tensors out in the order given, padding with spaces.
  EXPECT_EQ(header.substr(0, header.find_last_not_of(' ') + 1),
            R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
            R"("h":{"dtype":"F16","shape":[2],"data_offsets":[12,16]}})");
  EXPECT_EQ(std::memcmp(f.data() + 8 + n, v, 12), 0);
  EXPECT_EQ(std::memcmp(f.data() + 8 + n + 12, h, 4), 0);
}

TEST(Safetensors, ReadsHandWrittenFiles) {
  TmpDir dir;
  // Unpadded header, tensors listed out of offset order, extra whitespace.
  const std::string header = R"({ "b" : {"shape":[2],"dtype":"I32","data_offsets":[4,12]}, )"
                             R"("a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}, "__metadata__":{"x":"y"} })";
  ckpt_test::spit(dir / "h.safetensors", file_of(header, std::string("\x01\x02\x03\x04", 4) +
                                                              std::string("\x07\x00\x00\x00\xff\xff\xff\xff", 8)));
  Reader r(dir / "h.safetensors");
  int32_t b[2];
  r.read_tensor("b", b, sizeof b);
  EXPECT_EQ(b[0], 7);
  EXPECT_EQ(b[1], -1);
  uint8_t a[4];
  r.read_tensor("a", a, 4);
  EXPECT_EQ(a[3], 4);
  // dtypes smp has no type for are still validated and readable as bytes.
  ckpt_test::spit(dir / "u.safetensors", file_of(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})",
                                                 std::string("\1\0\1", 3)));
  Reader u(dir / "u.safetensors");
  EXPECT_EQ(u.header().tensors[0].smp_dtype, -1);
}

TEST(Safetensors, RejectsCorruptFiles) {
  const std::string good_h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[1],"data_offsets":[8,10]}})";
  const std::string data(10, 'x');
  ASSERT_EQ(status_of(file_of(good_h, data)), Status::Success);
  struct Case {
    const char *what;
    std::string bytes;
  };
  const std::string good = file_of(good_h, data);
  std::vector<Case> cases = {
      {"empty", ""},
      {"short length", std::string(5, '\0')},
      {"truncated data", good.substr(0, good.size() - 1)},
      {"truncated header", good.substr(0, 30)},
      {"trailing bytes", good + "z"},
      {"huge header length", le64(uint64_t{1} << 62) + good.substr(8)},
      {"length past end", le64(good_h.size() + 11) + good.substr(8)},
      {"length one short", le64(good_h.size() - 1) + good.substr(8)},
      {"not an object", file_of("[1,2]   ", "")},
      {"flipped brace", file_of("x" + good_h.substr(1), data)},
      {"bad json", file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},})", std::string(8, 'x'))},
      {"unknown dtype", file_of(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", std::string(8, 'x'))},
      {"shape mismatch", file_of(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 'x'))},
      {"offsets reversed", file_of(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", std::string(8, 'x'))},
      {"offsets outside", file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(8, 'x'))},
      {"overlap", file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, 'x'))},
      {"gap", file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", std::string(12, 'x'))},
      {"duplicate name", file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, 'x'))},
      {"missing field", file_of(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", std::string(4, 'x'))},
      {"extra field", file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"z":1}})", std::string(4, 'x'))},
      {"negative dim", file_of(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, 'x'))},
      {"float dim", file_of(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", std::string(4, 'x'))},
      {"overflowing shape", file_of(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", "")},
      {"overflowing bytes", file_of(R"({"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})", "")},
      {"metadata not strings", file_of(R"({"__metadata__":{"a":1}})", "")},
      {"three offsets", file_of(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,1]}})", "x")},
  };
  for (const auto &c : cases) EXPECT_EQ(status_of(c.bytes), Status::Corrupt) << c.what;

  // The same through the file reader, including a file truncated on disk.
  TmpDir dir;
  for (const auto &c : cases) {
    ckpt_test::spit(dir / "c.safetensors", c.bytes);
    try {
      Reader r(dir / "c.safetensors");
      ADD_FAILURE() << "Reader accepted: " << c.what;
    } catch (const Error &e) {
      EXPECT_EQ(e.status(), Status::Corrupt) << c.what << ": " << e.what();
    }
  }
  try {
    Reader r(dir / "missing.safetensors");
    ADD_FAILURE() << "opened a missing file";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), Status::IO);
  }
}

TEST(Safetensors, WriterRejectsBadInput) {
  TmpDir dir;
  float x = 0;
  auto st = [&](std::vector<TensorData> t) {
    try {
      write_file(dir / "w.safetensors", t);
      return Status::Success;
    } catch (const Error &e) {
      return e.status();
    }
  };
  EXPECT_EQ(st({{TensorSpec{"a", DType::F32, {1}}, &x}, {TensorSpec{"a", DType::F32, {1}}, &x}}), Status::InvalidArgument);
  EXPECT_EQ(st({{TensorSpec{"", DType::F32, {1}}, &x}}), Status::InvalidArgument);
  EXPECT_EQ(st({{TensorSpec{"__metadata__", DType::F32, {1}}, &x}}), Status::InvalidArgument);
  EXPECT_EQ(st({{TensorSpec{"n", DType::F32, {1}}, nullptr}}), Status::InvalidArgument);
  EXPECT_FALSE(smp::ckpt::io::exists(dir / "w.safetensors"));
  // An unfinished writer leaves no file behind.
  {
    Writer w(dir / "p.safetensors", {TensorSpec{"a", DType::F32, {4}}});
    w.append(&x, 4);
  }
  EXPECT_FALSE(smp::ckpt::io::exists(dir / "p.safetensors"));
}

// Thousands of random mutations of a valid file: each is rejected with
// Corrupt or, if accepted, describes only bytes inside the file.
TEST(Safetensors, RandomMutationsAreRejectedOrSafe) {
  TmpDir dir;
  std::vector<char> payload(4 * 6 + 2 * 3 + 8 + 1 * 5);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
  write_file(dir / "v.safetensors",
             {{TensorSpec{"w", DType::F32, {2, 3}}, payload.data()},
              {TensorSpec{"h", DType::BF16, {3}}, payload.data()},
              {TensorSpec{"s", DType::I64, {}}, payload.data()},
              {TensorSpec{"b", DType::U8, {5}}, payload.data()}},
             {{"format", "pt"}});
  const std::string valid = ckpt_test::slurp(dir / "v.safetensors");
  std::mt19937 rng(12345);
  const char kTokens[] = "{}[]\",:0123456789-eE. \\u";
  int accepted = 0;
  for (int it = 0; it < 6000; ++it) {
    std::string m = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      const size_t pos = rng() % m.size();
      switch (rng() % 6) {
        case 0: m[pos] = static_cast<char>(rng()); break;
        case 1: m[pos] = kTokens[rng() % (sizeof kTokens - 1)]; break;
        case 2: m.erase(pos, 1 + rng() % 8); break;
        case 3: m.insert(pos, 1, kTokens[rng() % (sizeof kTokens - 1)]); break;
        case 4: m.resize(pos); break;
        default: m[rng() % 8] = static_cast<char>(rng()); break;  // the length field
      }
      if (m.empty()) m = "x";
    }
    try {
      const Header h = parse_file(reinterpret_cast<const uint8_t *>(m.data()), m.size(), "mutant");
      ++accepted;
      ASSERT_EQ(h.data_start + h.data_size, m.size());
      for (const auto &t : h.tensors) {
        ASSERT_LE(t.begin, t.end);
        ASSERT_LE(t.end, h.data_size);
        ASSERT_EQ(t.numel() * t.elem_size, t.end - t.begin);
      }
    } catch (const Error &e) {
      ASSERT_EQ(e.status(), Status::Corrupt) << e.what();
    }
    if (it % 20 == 0) {  // and through the file reader
      ckpt_test::spit(dir / "m.safetensors", m);
      try {
        Reader r(dir / "m.safetensors");
        for (const auto &t : r.header().tensors) {
          std::vector<char> buf(static_cast<size_t>(t.end - t.begin));
          r.read_tensor(t.name, buf.data(), buf.size());
        }
      } catch (const Error &e) {
        ASSERT_EQ(e.status(), Status::Corrupt) << e.what();
      }
    }
  }
  // Some mutations (padding spaces, data bytes) keep the file valid.
  EXPECT_GT(accepted, 0);
}
