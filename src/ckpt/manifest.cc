#include "ckpt/manifest.h"

#include <climits>

#include "ckpt/crc32c.h"
#include "ckpt/json.h"
#include "common/error.h"

namespace smp::ckpt {
namespace {

using json::Json;
// The type test a field must pass, as nlohmann names it (&Json::is_string).
using Is = bool (Json::*)() const noexcept;

[[noreturn]] void bad(const std::string &what, const std::string &msg) {
  throw Error(Status::Corrupt, what + ": " + msg);
}

const Json &field(const Json &obj, const char *key, Is is, const std::string &what) {
  const auto it = obj.is_object() ? obj.find(key) : obj.end();
  if (it == obj.end() || !((*it).*is)()) bad(what, std::string("missing or mistyped \"") + key + "\"");
  return *it;
}

const std::string &get_string(const Json &obj, const char *key, const std::string &what) {
  return field(obj, key, &Json::is_string, what).get_ref<const std::string &>();
}

uint64_t get_uint(const Json &obj, const char *key, const std::string &what) {
  const Json &v = field(obj, key, &Json::is_number, what);
  if (!v.is_number_unsigned()) bad(what, std::string("\"") + key + "\" is not a non-negative integer");
  return v.get<uint64_t>();
}

std::vector<uint64_t> get_dims(const Json &obj, const char *key, const std::string &what) {
  std::vector<uint64_t> d;
  for (const auto &x : field(obj, key, &Json::is_array, what)) {
    if (!x.is_number_unsigned()) bad(what, std::string("\"") + key + "\" holds a non-integer");
    d.push_back(x.get<uint64_t>());
  }
  return d;
}

bool plain_file_name(const std::string &n) {
  return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos &&
         n.find('\0') == std::string::npos;
}

constexpr const char *kSealKey = "\"manifest_crc32c\": ";

// Checks the seal, if the text has one: the key's last occurrence must be
// followed by exactly a decimal CRC32C and "\n}\n", and the CRC32C of
// every byte before the key must match. Returns whether it had one.
bool check_seal(const std::string &text, const std::string &what) {
  const size_t key = text.rfind(kSealKey);
  if (key == std::string::npos) return false;
  size_t i = key + std::string(kSealKey).size();
  uint64_t v = 0;
  const size_t digits = i;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i - digits < 10)
    v = v * 10 + static_cast<uint64_t>(text[i++] - '0');
  if (i == digits || text.compare(i, std::string::npos, "\n}\n") != 0 || v > 0xffffffffu)
    bad(what, "the manifest's checksum field is malformed");
  const uint32_t crc = crc32c(text.data(), key);
  if (crc != v)
    bad(what, "manifest checksum mismatch (CRC32C " + std::to_string(crc) + ", the manifest says " +
                  std::to_string(v) + "): the manifest is corrupt");
  return true;
}

}  // namespace

const TensorRecord *Manifest::find(Kind kind, const std::string &name) const {
  if (tensor_at_.size() == tensors.size()) {
    const auto it = tensor_at_.find({static_cast<int>(kind), name});
    return it == tensor_at_.end() ? nullptr : &tensors[it->second];
  }
  for (const auto &t : tensors)
    if (t.kind == kind && t.name == name) return &t;
  return nullptr;
}

const FileRecord *Manifest::file(const std::string &name) const {
  if (file_at_.size() == files.size()) {
    const auto it = file_at_.find(name);
    return it == file_at_.end() ? nullptr : &files[it->second];
  }
  for (const auto &f : files)
    if (f.name == name) return &f;
  return nullptr;
}

void Manifest::index() {
  tensor_at_.clear();
  file_at_.clear();
  for (size_t i = 0; i < tensors.size(); ++i) tensor_at_.emplace(std::make_pair(static_cast<int>(tensors[i].kind), tensors[i].name), i);
  for (size_t i = 0; i < files.size(); ++i) file_at_.emplace(files[i].name, i);
}

std::string seal_manifest(std::string body) {
  const uint32_t crc = crc32c(body.data(), body.size());
  return body + kSealKey + std::to_string(crc) + "\n}\n";
}

// The fields, then one file or tensor a line, each serialized by nlohmann:
// a manifest of a million pieces stays compact and greppable, and the seal
// (the CRC32C of the text before it) stays the last field.
std::string manifest_to_json(const Manifest &m) {
  const std::string what = "manifest";
  const Json head = {{"format", "smp-checkpoint"}, {"version", 2},          {"mode", m.mode},
                     {"world_size", m.world_size}, {"topology", m.topology}};
  std::string o = "{\n";
  for (const auto &f : head.items()) o += Json(f.key()).dump() + ": " + json::dump(f.value(), what) + ",\n";
  const auto list = [&](const char *key, size_t n, const auto &record) {
    o += Json(key).dump() + ": [";
    for (size_t i = 0; i < n; ++i) o += (i ? ",\n  " : "\n  ") + json::dump(record(i), what);
    o += "],\n";
  };
  list("files", m.files.size(), [&](size_t i) {
    const FileRecord &f = m.files[i];
    return Json{{"name", f.name}, {"bytes", f.bytes}, {"crc32c", f.crc32c}};
  });
  list("tensors", m.tensors.size(), [&](size_t i) {
    const TensorRecord &t = m.tensors[i];
    Json pieces = Json::array();
    for (const auto &p : t.pieces) {
      Json piece = {{"file", p.file}, {"offset", p.piece.offset()}, {"extent", p.piece.extent()}};
      if (p.piece.is_range()) json::append(piece, "range", {p.piece.range_begin(), p.piece.numel()});
      pieces.push_back(std::move(piece));
    }
    return Json{{"name", t.name}, {"kind", kind_name(t.kind)}, {"dtype", dtype_name(t.dtype)},
                {"shape", t.shape}, {"pieces", std::move(pieces)}};
  });
  return seal_manifest(o);
}

Manifest manifest_from_json(const std::string &text, const std::string &what) {
  const bool sealed = check_seal(text, what);
  const Json root = json::parse(text.data(), text.size(), what);
  if (!root.is_object()) bad(what, "not a JSON object");
  if (get_string(root, "format", what) != "smp-checkpoint") bad(what, "not an smp checkpoint manifest");
  const uint64_t version = get_uint(root, "version", what);
  if (version != 1 && version != 2) bad(what, "unsupported manifest version " + std::to_string(version));
  // Version 2 is always sealed; version 1 never was (a seal on it, or a
  // version 2 without one, is damage).
  if (version == 2 && !sealed) bad(what, "the manifest has no checksum field (damaged or truncated)");
  if (version == 1 && sealed) bad(what, "a version 1 manifest with a checksum field");
  Manifest m;
  std::map<std::string, uint64_t> room;  // bytes of each file not yet claimed by a piece
  m.mode = get_string(root, "mode", what);
  if (m.mode != "consolidated" && m.mode != "sharded") bad(what, "unknown mode \"" + m.mode + "\"");
  const uint64_t world = get_uint(root, "world_size", what);
  if (world < 1 || world > INT_MAX) bad(what, "world_size " + std::to_string(world) + " is outside 1.." + std::to_string(INT_MAX));
  m.world_size = static_cast<int>(world);
  m.topology = get_string(root, "topology", what);
  for (const auto &f : field(root, "files", &Json::is_array, what)) {
    FileRecord r;
    r.name = get_string(f, "name", what);
    if (!plain_file_name(r.name)) bad(what, "file name \"" + r.name + "\" is not a plain name");
    if (m.file_at_.count(r.name)) bad(what, "file \"" + r.name + "\" listed twice");
    m.file_at_.emplace(r.name, m.files.size());
    r.bytes = get_uint(f, "bytes", what);
    const uint64_t crc = get_uint(f, "crc32c", what);
    if (crc > 0xffffffffu) bad(what, "crc32c out of range");
    r.crc32c = static_cast<uint32_t>(crc);
    m.files.push_back(r);
  }
  for (const auto &t : field(root, "tensors", &Json::is_array, what)) {
    TensorRecord r;
    r.name = get_string(t, "name", what);
    const std::string tw = what + ": tensor \"" + r.name + "\"";
    const std::string kind = get_string(t, "kind", tw);
    if (kind == "model") r.kind = Kind::Model;
    else if (kind == "optimizer") r.kind = Kind::Optimizer;
    else bad(tw, "unknown kind \"" + kind + "\"");
    if (!m.tensor_at_.emplace(std::make_pair(static_cast<int>(r.kind), r.name), m.tensors.size()).second)
      bad(tw, "listed twice");
    const std::string dt = get_string(t, "dtype", tw);
    bool found = false;
    for (int d = 0; d < kNumDTypes; ++d)
      if (dt == dtype_name(static_cast<DType>(d))) {
        r.dtype = static_cast<DType>(d);
        found = true;
      }
    if (!found) bad(tw, "unknown dtype \"" + dt + "\"");
    r.shape = get_dims(t, "shape", tw);
    try {
      for (const auto &p : field(t, "pieces", &Json::is_array, tw)) {
        SourcePiece s;
        s.file = get_string(p, "file", tw);
        if (!m.file(s.file)) bad(tw, "piece in unlisted file \"" + s.file + "\"");
        const auto off = get_dims(p, "offset", tw), ext = get_dims(p, "extent", tw);
        if (p.contains("range")) {
          const auto be = get_dims(p, "range", tw);
          if (be.size() != 2) bad(tw, "range needs [begin, count]");
          s.piece = Piece::box_range(r.shape, off, ext, be[0], be[1], tw);
        } else {
          s.piece = Piece::box(r.shape, off, ext, tw);
        }
        r.pieces.push_back(std::move(s));
      }
    } catch (const Error &e) {
      if (e.status() == Status::Corrupt) throw;
      bad(what, e.what());
    }
    // The pieces' element counts must add up to the tensor's: with the
    // tiling proof later this rules out gaps; here it bounds the work that
    // proof does by the tensor's size.
    const uint64_t total = Piece::whole(r.shape, tw).global_numel();
    const uint64_t es = dtype_size(r.dtype);
    uint64_t sum = 0;
    std::map<std::string, bool> in_file;  // a file stores a tensor under its name: once at most
    for (const auto &p : r.pieces) {
      if (!in_file.emplace(p.file, true).second) bad(tw, "two of its pieces are in " + p.file);
      if (p.piece.numel() > total - sum)
        bad(tw, "its pieces hold more than its " + std::to_string(total) + " elements");
      sum += p.piece.numel();
      // Each piece is in its file whole: the bytes it claims count against
      // the file's recorded size (overflow-safe: bytes <= file size).
      auto &left = room.try_emplace(p.file, m.file(p.file)->bytes).first->second;
      if (p.piece.numel() > left / es)
        bad(tw, "its piece " + p.piece.describe() + " does not fit in " + p.file + " (" +
                    std::to_string(m.file(p.file)->bytes) + " bytes with the file's other pieces)");
      left -= p.piece.numel() * es;
    }
    if (sum != total)
      bad(tw, "its pieces hold " + std::to_string(sum) + " of its " + std::to_string(total) + " elements");
    m.tensors.push_back(std::move(r));
  }
  m.index();
  return m;
}

void check_manifest_tiling(const Manifest &m, const std::string &what) {
  for (const auto &t : m.tensors) {
    std::vector<const Piece *> pieces;
    for (const auto &p : t.pieces) pieces.push_back(&p.piece);
    uint64_t total = 1;
    for (uint64_t d : t.shape) total *= d;  // checked when parsed
    const Tiling tiling = check_tiling(pieces, total);
    if (tiling.verdict == Tiling::Verdict::Exact) continue;
    const std::string tw = what + ": " + kind_name(t.kind) + " tensor \"" + t.name + "\"";
    if (tiling.verdict == Tiling::Verdict::Overlap)
      bad(tw, "its pieces in " + t.pieces[tiling.a].file + " (" + t.pieces[tiling.a].piece.describe() + ") and " +
                  t.pieces[tiling.b].file + " (" + t.pieces[tiling.b].piece.describe() + ") overlap at element " +
                  std::to_string(tiling.at));
    bad(tw, "no piece holds element " + std::to_string(tiling.at));
  }
}

}  // namespace smp::ckpt
