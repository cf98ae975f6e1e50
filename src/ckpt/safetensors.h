// safetensors files: an 8-byte little-endian header length N, N bytes of
// JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]},
// ..., "__metadata__": {str: str}}, then the tensors' bytes (row-major,
// little-endian), offsets relative to the data start.
//
// The reader validates everything the reference implementation does (and
// rejects duplicate names, which a lenient JSON parser would hide); a bad
// file is smp::Error(Status::Corrupt), an unreadable one Status::IO. It
// never reads outside the file. The writer streams: the header first, then
// data in the order given, so a tensor never has to be whole in memory.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/dtype.h"

namespace smp::ckpt {

// The reference reader refuses headers above this size; so do we.
inline constexpr uint64_t kMaxHeaderBytes = 100000000;

struct TensorEntry {
  std::string name;
  std::string dtype;        // as safetensors spells it ("F32", "BOOL", ...)
  size_t elem_size = 0;     // bytes per element
  int smp_dtype = -1;       // the smp::DType value, or -1 if smp has none
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range, relative to the data start
  uint64_t numel() const;
};

struct Header {
  std::vector<TensorEntry> tensors;  // sorted by begin
  std::vector<std::pair<std::string, std::string>> metadata;
  uint64_t data_start = 0;  // 8 + N
  uint64_t data_size = 0;   // file size - data_start
  // O(log n) by name once parse_header has filled by_name (indices into
  // tensors, sorted by name); a linear scan otherwise.
  const TensorEntry *find(const std::string &name) const;
  std::vector<size_t> by_name;
};

// Validates the JSON header of a file of file_size bytes whose header is
// header_len bytes long. `what` names the file in messages.
Header parse_header(const char *json, size_t header_len, uint64_t file_size, const std::string &what);
// Validates a whole file held in memory (the fuzzer's entry point).
Header parse_file(const uint8_t *data, size_t n, const std::string &what);

// An open, validated file; reads go through pread of the exact byte ranges.
class Reader {
 public:
  explicit Reader(const std::string &path);
  ~Reader();
  Reader(const Reader &) = delete;
  Reader &operator=(const Reader &) = delete;

  const Header &header() const { return header_; }
  const std::string &path() const { return path_; }
  // n bytes at `offset` from the data start; bounds-checked.
  void read_data(uint64_t offset, void *dst, size_t n) const;
  // The whole tensor into dst (dst_bytes must equal its byte length).
  void read_tensor(const std::string &name, void *dst, size_t dst_bytes) const;

 private:
  std::string path_;
  int fd_ = -1;
  Header header_;
};

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<uint64_t> shape;
  uint64_t bytes() const;
};

struct FileDigest {
  uint64_t size = 0;
  uint32_t crc32c = 0;
};

// The header a writer produces for these tensors, laid out in the given
// order, padded with spaces so the data starts 8-byte aligned (as the
// reference writer does). Throws InvalidArgument for duplicate or empty
// names or a name starting with "__".
std::string make_header(const std::vector<TensorSpec> &specs,
                        const std::vector<std::pair<std::string, std::string>> &metadata);

class Writer {
 public:
  // Creates (truncates) path and writes the header.
  Writer(const std::string &path, const std::vector<TensorSpec> &specs,
         const std::vector<std::pair<std::string, std::string>> &metadata = {});
  ~Writer();  // an unfinished file is closed and removed
  Writer(const Writer &) = delete;
  Writer &operator=(const Writer &) = delete;

  // The next n bytes of tensor data, in spec order.
  void append(const void *data, size_t n);
  uint64_t remaining() const { return total_ - written_; }
  // Flushes, fsyncs and closes; throws if the data is incomplete.
  FileDigest finish();

 private:
  void append_raw(const void *data, size_t n);
  void flush();
  std::string path_;
  int fd_ = -1;
  uint64_t total_ = 0, written_ = 0, file_size_ = 0;
  uint32_t crc_ = 0;
  std::vector<char> buf_;
  size_t buf_used_ = 0;
};

// Whole tensors in memory, written in one go.
struct TensorData {
  TensorSpec spec;
  const void *data = nullptr;
};
FileDigest write_file(const std::string &path, const std::vector<TensorData> &tensors,
                      const std::vector<std::pair<std::string, std::string>> &metadata = {});

// Looks up a safetensors dtype name: element size and smp::DType (-1 when
// smp has none). Returns false for a name safetensors does not define.
bool dtype_from_name(const std::string &name, size_t *elem_size, int *smp_dtype);

}  // namespace smp::ckpt
