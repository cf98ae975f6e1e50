#include "ckpt/manifest.h"

#include "ckpt/json.h"
#include "common/error.h"

namespace smp::ckpt {
namespace {

using json::Value;

void put_dims(std::string &o, const std::vector<uint64_t> &d) {
  o += '[';
  for (size_t i = 0; i < d.size(); ++i) o += (i ? "," : "") + std::to_string(d[i]);
  o += ']';
}

[[noreturn]] void bad(const std::string &what, const std::string &msg) {
  throw Error(Status::Corrupt, what + ": " + msg);
}

const Value &field(const Value &obj, const char *key, Value::Kind kind, const std::string &what) {
  const Value *v = obj.kind == Value::Kind::Object ? obj.find(key) : nullptr;
  if (!v || v->kind != kind) bad(what, std::string("missing or mistyped \"") + key + "\"");
  return *v;
}

uint64_t get_uint(const Value &obj, const char *key, const std::string &what) {
  const Value &v = field(obj, key, Value::Kind::Number, what);
  if (!v.is_uint) bad(what, std::string("\"") + key + "\" is not a non-negative integer");
  return v.u;
}

std::vector<uint64_t> get_dims(const Value &obj, const char *key, const std::string &what) {
  std::vector<uint64_t> d;
  for (const auto &x : field(obj, key, Value::Kind::Array, what).items) {
    if (x.kind != Value::Kind::Number || !x.is_uint) bad(what, std::string("\"") + key + "\" holds a non-integer");
    d.push_back(x.u);
  }
  return d;
}

bool plain_file_name(const std::string &n) {
  return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos &&
         n.find('\0') == std::string::npos;
}

}  // namespace

const TensorRecord *Manifest::find(Kind kind, const std::string &name) const {
  for (const auto &t : tensors)
    if (t.kind == kind && t.name == name) return &t;
  return nullptr;
}

const FileRecord *Manifest::file(const std::string &name) const {
  for (const auto &f : files)
    if (f.name == name) return &f;
  return nullptr;
}

std::string manifest_to_json(const Manifest &m) {
  std::string o = "{\n\"format\": \"smp-checkpoint\",\n\"version\": 1,\n\"mode\": ";
  json::write_string(o, m.mode);
  o += ",\n\"world_size\": " + std::to_string(m.world_size) + ",\n\"topology\": ";
  json::write_string(o, m.topology);
  o += ",\n\"files\": [";
  for (size_t i = 0; i < m.files.size(); ++i) {
    o += i ? ",\n  {\"name\": " : "\n  {\"name\": ";
    json::write_string(o, m.files[i].name);
    o += ", \"bytes\": " + std::to_string(m.files[i].bytes) + ", \"crc32c\": " + std::to_string(m.files[i].crc32c) + "}";
  }
  o += "],\n\"tensors\": [";
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const auto &t = m.tensors[i];
    o += i ? ",\n  {\"name\": " : "\n  {\"name\": ";
    json::write_string(o, t.name);
    o += ", \"kind\": \"" + std::string(kind_name(t.kind)) + "\", \"dtype\": \"" + dtype_name(t.dtype) + "\", \"shape\": ";
    put_dims(o, t.shape);
    o += ", \"pieces\": [";
    for (size_t j = 0; j < t.pieces.size(); ++j) {
      const auto &p = t.pieces[j];
      o += j ? ", {\"file\": " : "{\"file\": ";
      json::write_string(o, p.file);
      o += ", \"offset\": ";
      put_dims(o, p.piece.offset());
      o += ", \"extent\": ";
      put_dims(o, p.piece.extent());
      if (p.piece.is_range()) {
        o += ", \"range\": ";
        put_dims(o, {p.piece.range_begin(), p.piece.numel()});
      }
      o += '}';
    }
    o += "]}";
  }
  return o + "]\n}\n";
}

Manifest manifest_from_json(const std::string &text, const std::string &what) {
  const Value root = json::parse(text.data(), text.size(), what);
  if (root.kind != Value::Kind::Object) bad(what, "not a JSON object");
  if (field(root, "format", Value::Kind::String, what).text != "smp-checkpoint") bad(what, "not an smp checkpoint manifest");
  if (get_uint(root, "version", what) != 1) bad(what, "unsupported manifest version");
  Manifest m;
  m.mode = field(root, "mode", Value::Kind::String, what).text;
  if (m.mode != "consolidated" && m.mode != "sharded") bad(what, "unknown mode \"" + m.mode + "\"");
  m.world_size = static_cast<int>(get_uint(root, "world_size", what));
  m.topology = field(root, "topology", Value::Kind::String, what).text;
  for (const auto &f : field(root, "files", Value::Kind::Array, what).items) {
    FileRecord r;
    r.name = field(f, "name", Value::Kind::String, what).text;
    if (!plain_file_name(r.name)) bad(what, "file name \"" + r.name + "\" is not a plain name");
    if (m.file(r.name)) bad(what, "file \"" + r.name + "\" listed twice");
    r.bytes = get_uint(f, "bytes", what);
    const uint64_t crc = get_uint(f, "crc32c", what);
    if (crc > 0xffffffffu) bad(what, "crc32c out of range");
    r.crc32c = static_cast<uint32_t>(crc);
    m.files.push_back(r);
  }
  for (const auto &t : field(root, "tensors", Value::Kind::Array, what).items) {
    TensorRecord r;
    r.name = field(t, "name", Value::Kind::String, what).text;
    const std::string tw = what + ": tensor \"" + r.name + "\"";
    const std::string kind = field(t, "kind", Value::Kind::String, tw).text;
    if (kind == "model") r.kind = Kind::Model;
    else if (kind == "optimizer") r.kind = Kind::Optimizer;
    else bad(tw, "unknown kind \"" + kind + "\"");
    if (m.find(r.kind, r.name)) bad(tw, "listed twice");
    const std::string dt = field(t, "dtype", Value::Kind::String, tw).text;
    bool found = false;
    for (int d = 0; d < kNumDTypes; ++d)
      if (dt == dtype_name(static_cast<DType>(d))) {
        r.dtype = static_cast<DType>(d);
        found = true;
      }
    if (!found) bad(tw, "unknown dtype \"" + dt + "\"");
    r.shape = get_dims(t, "shape", tw);
    try {
      for (const auto &p : field(t, "pieces", Value::Kind::Array, tw).items) {
        SourcePiece s;
        s.file = field(p, "file", Value::Kind::String, tw).text;
        if (!m.file(s.file)) bad(tw, "piece in unlisted file \"" + s.file + "\"");
        const auto off = get_dims(p, "offset", tw), ext = get_dims(p, "extent", tw);
        if (p.find("range")) {
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
    m.tensors.push_back(std::move(r));
  }
  return m;
}

}  // namespace smp::ckpt
