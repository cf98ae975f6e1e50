#include "ckpt/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "ckpt/crc32c.h"
#include "ckpt/fileio.h"
#include "ckpt/json.h"
#include "common/error.h"

namespace smp::ckpt {
namespace {

[[noreturn]] void corrupt(const std::string &what, const std::string &msg) {
  throw Error(Status::Corrupt, what + ": " + msg);
}

uint64_t load_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void store_le64(char *p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// a * b, or false when it overflows uint64_t.
bool mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
  if (a != 0 && b > UINT64_MAX / a) return false;
  *out = a * b;
  return true;
}

TensorEntry parse_entry(const std::string &name, const json::Json &v, const std::string &what) {
  const std::string where = what + ": tensor \"" + name + "\"";
  if (!v.is_object()) corrupt(where, "entry is not an object");
  TensorEntry e;
  e.name = name;
  bool have_dtype = false, have_shape = false, have_offsets = false;
  for (const auto &[key, val] : v.items()) {
    if (key == "dtype") {
      if (!val.is_string()) corrupt(where, "dtype is not a string");
      const auto &dt = val.get_ref<const std::string &>();
      if (!dtype_from_name(dt, &e.elem_size, &e.smp_dtype)) corrupt(where, "unknown dtype \"" + dt + "\"");
      e.dtype = dt;
      have_dtype = true;
    } else if (key == "shape") {
      if (!val.is_array()) corrupt(where, "shape is not an array");
      for (const auto &d : val) {
        if (!d.is_number_unsigned()) corrupt(where, "shape holds something other than a non-negative integer");
        e.shape.push_back(d.get<uint64_t>());
      }
      have_shape = true;
    } else if (key == "data_offsets") {
      if (!val.is_array() || val.size() != 2) corrupt(where, "data_offsets is not a pair");
      for (const auto &d : val)
        if (!d.is_number_unsigned())
          corrupt(where, "data_offsets holds something other than a non-negative integer");
      e.begin = val[0].get<uint64_t>();
      e.end = val[1].get<uint64_t>();
      have_offsets = true;
    } else {
      corrupt(where, "unexpected field \"" + key + "\"");
    }
  }
  if (!have_dtype || !have_shape || !have_offsets)
    corrupt(where, "needs dtype, shape and data_offsets");
  if (e.end < e.begin) corrupt(where, "data_offsets end before they begin");
  uint64_t n = 1;
  for (uint64_t d : e.shape)
    if (!mul_ok(n, d, &n)) corrupt(where, "shape's element count overflows");
  uint64_t bytes;
  if (!mul_ok(n, e.elem_size, &bytes)) corrupt(where, "byte size overflows");
  if (bytes != e.end - e.begin)
    corrupt(where, "shape and dtype make " + std::to_string(bytes) + " bytes but data_offsets span " +
                       std::to_string(e.end - e.begin));
  return e;
}

}  // namespace

uint64_t TensorEntry::numel() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

const TensorEntry *Header::find(const std::string &name) const {
  if (by_name.size() == tensors.size()) {
    const auto it = std::lower_bound(by_name.begin(), by_name.end(), name,
                                     [&](size_t i, const std::string &n) { return tensors[i].name < n; });
    return it != by_name.end() && tensors[*it].name == name ? &tensors[*it] : nullptr;
  }
  for (const auto &t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

bool dtype_from_name(const std::string &name, size_t *elem_size, int *smp_dtype) {
  struct Row {
    const char *name;
    size_t size;
    int smp;
  };
  static const Row kRows[] = {
      {"F32", 4, static_cast<int>(DType::F32)}, {"F64", 8, static_cast<int>(DType::F64)},
      {"F16", 2, static_cast<int>(DType::F16)}, {"BF16", 2, static_cast<int>(DType::BF16)},
      {"I8", 1, static_cast<int>(DType::I8)},   {"U8", 1, static_cast<int>(DType::U8)},
      {"I32", 4, static_cast<int>(DType::I32)}, {"I64", 8, static_cast<int>(DType::I64)},
      {"BOOL", 1, -1},  {"I16", 2, -1}, {"U16", 2, -1}, {"U32", 4, -1}, {"U64", 8, -1},
      {"F8_E5M2", 1, -1}, {"F8_E4M3", 1, -1}, {"F8_E8M0", 1, -1},
  };
  for (const auto &r : kRows)
    if (name == r.name) {
      *elem_size = r.size;
      *smp_dtype = r.smp;
      return true;
    }
  return false;
}

Header parse_header(const char *text, size_t header_len, uint64_t file_size, const std::string &what) {
  if (header_len == 0 || text[0] != '{') corrupt(what, "header does not start with '{'");
  const json::Json root = json::parse(text, header_len, what + " header");
  if (!root.is_object()) corrupt(what, "header is not a JSON object");
  Header h;
  h.data_start = 8 + header_len;
  h.data_size = file_size - h.data_start;
  for (const auto &[key, val] : root.items()) {
    if (key == "__metadata__") {
      if (!val.is_object()) corrupt(what, "__metadata__ is not an object");
      for (const auto &[mk, mv] : val.items()) {
        if (!mv.is_string()) corrupt(what, "__metadata__ value of \"" + mk + "\" is not a string");
        h.metadata.emplace_back(mk, mv.get<std::string>());
      }
      continue;
    }
    h.tensors.push_back(parse_entry(key, val, what));
  }
  // As the reference: sorted by offset, each tensor starts where the last
  // ended (no gaps, no overlaps), and the last one ends at the end of file.
  std::stable_sort(h.tensors.begin(), h.tensors.end(), [](const TensorEntry &a, const TensorEntry &b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  for (const auto &t : h.tensors) {
    if (t.begin != pos)
      corrupt(what, "tensor \"" + t.name + "\" starts at byte " + std::to_string(t.begin) +
                        (t.begin < pos ? " inside the previous tensor (overlap)" : " leaving a gap") +
                        " (expected " + std::to_string(pos) + ")");
    pos = t.end;
  }
  if (pos != h.data_size)
    corrupt(what, "tensors cover " + std::to_string(pos) + " data bytes but the file holds " +
                      std::to_string(h.data_size));
  h.by_name.resize(h.tensors.size());
  for (size_t i = 0; i < h.by_name.size(); ++i) h.by_name[i] = i;
  std::sort(h.by_name.begin(), h.by_name.end(),
            [&](size_t a, size_t b) { return h.tensors[a].name < h.tensors[b].name; });
  return h;
}

Header parse_file(const uint8_t *data, size_t n, const std::string &what) {
  if (n < 8) corrupt(what, "shorter than the 8-byte header length");
  const uint64_t len = load_le64(data);
  if (len > kMaxHeaderBytes) corrupt(what, "header length " + std::to_string(len) + " exceeds the limit");
  if (len > n - 8) corrupt(what, "header length " + std::to_string(len) + " runs past the end of the file");
  return parse_header(reinterpret_cast<const char *>(data) + 8, static_cast<size_t>(len), n, what);
}

// ---- Reader ----

Reader::Reader(const std::string &path) : path_(path) {
  fd_ = io::open_read(path);
  try {
    const uint64_t size = io::file_size(fd_, path);
    if (size < 8) corrupt(path, "shorter than the 8-byte header length");
    uint8_t lenbuf[8];
    io::pread_all(fd_, lenbuf, 8, 0, path);
    const uint64_t len = load_le64(lenbuf);
    if (len > kMaxHeaderBytes) corrupt(path, "header length " + std::to_string(len) + " exceeds the limit");
    if (len > size - 8) corrupt(path, "header length " + std::to_string(len) + " runs past the end of the file");
    std::string text(static_cast<size_t>(len), '\0');
    io::pread_all(fd_, text.data(), text.size(), 8, path);
    header_ = parse_header(text.data(), text.size(), size, path);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

Reader::~Reader() {
  if (fd_ >= 0) ::close(fd_);
}

void Reader::read_data(uint64_t offset, void *dst, size_t n) const {
  if (offset > header_.data_size || n > header_.data_size - offset)
    throw Error(Status::Internal, path_ + ": read of " + std::to_string(n) + " bytes at " +
                                      std::to_string(offset) + " outside the data");
  io::pread_all(fd_, dst, n, header_.data_start + offset, path_);
}

void Reader::read_tensor(const std::string &name, void *dst, size_t dst_bytes) const {
  const TensorEntry *e = header_.find(name);
  if (!e) throw Error(Status::InvalidArgument, path_ + ": no tensor \"" + name + "\"");
  if (dst_bytes != e->end - e->begin)
    throw Error(Status::InvalidArgument, path_ + ": tensor \"" + name + "\" has " +
                                             std::to_string(e->end - e->begin) + " bytes, buffer " +
                                             std::to_string(dst_bytes));
  read_data(e->begin, dst, dst_bytes);
}

// ---- Writer ----

uint64_t TensorSpec::bytes() const {
  uint64_t n = dtype_size(dtype);
  for (uint64_t d : shape)
    if (!mul_ok(n, d, &n)) throw Error(Status::InvalidArgument, "tensor \"" + name + "\": size overflows");
  return n;
}

std::string make_header(const std::vector<TensorSpec> &specs,
                        const std::vector<std::pair<std::string, std::string>> &metadata) {
  std::vector<const std::string *> names;
  json::Json h = json::Json::object();
  if (!metadata.empty()) {
    json::Json meta = json::Json::object();
    for (const auto &[k, v] : metadata) json::append(meta, k, v);
    json::append(h, "__metadata__", std::move(meta));
  }
  uint64_t pos = 0;
  for (const auto &s : specs) {
    if (s.name.empty() || s.name.compare(0, 2, "__") == 0)
      throw Error(Status::InvalidArgument, "tensor name \"" + s.name + "\" is empty or starts with \"__\"");
    names.push_back(&s.name);
    const uint64_t end = pos + s.bytes();
    json::append(h, s.name, {{"dtype", dtype_name(s.dtype)}, {"shape", s.shape}, {"data_offsets", {pos, end}}});
    pos = end;
  }
  std::sort(names.begin(), names.end(), [](auto *a, auto *b) { return *a < *b; });
  for (size_t i = 1; i < names.size(); ++i)
    if (*names[i] == *names[i - 1]) throw Error(Status::InvalidArgument, "tensor \"" + *names[i] + "\" given twice");
  std::string text = json::dump(h, "safetensors header");
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

Writer::Writer(const std::string &path, const std::vector<TensorSpec> &specs,
               const std::vector<std::pair<std::string, std::string>> &metadata)
    : path_(path) {
  const std::string h = make_header(specs, metadata);
  for (const auto &s : specs) total_ += s.bytes();
  buf_.resize(size_t{4} << 20);
  fd_ = io::create_write(path);
  try {
    char len[8];
    store_le64(len, h.size());
    append_raw(len, 8);
    append_raw(h.data(), h.size());
  } catch (...) {
    ::close(fd_);
    ::unlink(path.c_str());
    fd_ = -1;
    throw;
  }
}

Writer::~Writer() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
}

void Writer::append_raw(const void *data, size_t n) {
  if (n == 0) return;  // data may be NULL for an empty tensor
  crc_ = crc32c_update(crc_, data, n);
  file_size_ += n;
  if (buf_used_ + n > buf_.size()) flush();
  if (n >= buf_.size()) {
    io::write_all(fd_, data, n, path_);
    return;
  }
  std::memcpy(buf_.data() + buf_used_, data, n);
  buf_used_ += n;
}

void Writer::append(const void *data, size_t n) {
  if (fd_ < 0) throw Error(Status::Internal, path_ + ": append after finish");
  if (n > total_ - written_)
    throw Error(Status::Internal, path_ + ": " + std::to_string(n) + " bytes appended but only " +
                                      std::to_string(total_ - written_) + " remain");
  written_ += n;
  append_raw(data, n);
}

void Writer::flush() {
  if (buf_used_) io::write_all(fd_, buf_.data(), buf_used_, path_);
  buf_used_ = 0;
}

FileDigest Writer::finish() {
  if (written_ != total_)
    throw Error(Status::Internal, path_ + ": finished with " + std::to_string(total_ - written_) + " bytes missing");
  flush();
  io::fsync_fd(fd_, path_);
  const int fd = fd_;
  fd_ = -1;
  io::close_fd(fd, path_);
  return FileDigest{file_size_, crc_};
}

FileDigest write_file(const std::string &path, const std::vector<TensorData> &tensors,
                      const std::vector<std::pair<std::string, std::string>> &metadata) {
  std::vector<TensorSpec> specs;
  for (const auto &t : tensors) specs.push_back(t.spec);
  Writer w(path, specs, metadata);
  for (const auto &t : tensors) {
    const uint64_t b = t.spec.bytes();
    if (b && !t.data) throw Error(Status::InvalidArgument, "tensor \"" + t.spec.name + "\": no data");
    w.append(t.data, static_cast<size_t>(b));
  }
  return w.finish();
}

}  // namespace smp::ckpt
