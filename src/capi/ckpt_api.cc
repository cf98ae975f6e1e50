// The C API of checkpoints (smp.h, "Checkpoints"): argument checks here,
// the work in smp::ckpt (checkpoint.h, safetensors.h).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "capi/guard.h"
#include "ckpt/checkpoint.h"
#include "ckpt/fileio.h"
#include "ckpt/safetensors.h"
#include "comm/comm_bootstrap.h"
#include "comm/memtype.h"

using smp::capi::guarded;
using smp::capi::guarded_any;
using smp::capi::require;

struct smp_ckpt {
  smp::ckpt::Checkpoint ck;
  smp::ckpt::SaveOptions save;
  smp::ckpt::LoadOptions load;
  std::string last_path;
};

struct smp_safetensors {
  std::unique_ptr<smp::ckpt::Reader> reader;
  std::vector<std::vector<size_t>> shapes;
};

namespace {

constexpr int kMaxDims = 8;

// Live handles: a destroyed or garbage handle is reported, not dereferenced.
std::mutex g_mu;
std::set<const void *> g_live;

template <class T>
T &live(T *h, const char *what, const char *fn) {
  std::lock_guard<std::mutex> lock(g_mu);
  require(h != nullptr, std::string(fn) + ": " + what + " is NULL");
  require(g_live.count(h) != 0, std::string(fn) + ": " + what + " is not a live handle (destroyed, or never created)");
  return *h;
}

template <class T>
void adopt(T *h) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_live.insert(h);
}

template <class T>
void release(T *h, const char *what, const char *fn) {
  std::lock_guard<std::mutex> lock(g_mu);
  require(h != nullptr, std::string(fn) + ": " + what + " is NULL");
  require(g_live.erase(h) == 1, std::string(fn) + ": " + what + " is not a live handle (destroyed twice?)");
  delete h;
}

std::vector<uint64_t> dims(const size_t *p, int ndim) { return std::vector<uint64_t>(p, p + ndim); }

void add(smp_ckpt_t ckpt, const char *fn, const char *name, const smp_dtype_t &dtype, int ndim, const size_t *global_shape,
         const size_t *offsets, const size_t *local_shape, bool ranged, size_t range_begin, size_t range_count,
         void *data, int flags) {
  const std::string f = fn;
  smp_ckpt &h = live(ckpt, "ckpt", fn);
  require(name != nullptr, f + ": name is NULL");
  const smp::DType t = smp::capi::to_dtype(dtype);
  require(ndim >= 0 && ndim <= kMaxDims, f + ": ndim " + std::to_string(ndim) + " is outside 0..8");
  require(ndim == 0 || global_shape != nullptr, f + ": global_shape is NULL");
  require((offsets == nullptr) == (local_shape == nullptr),
          f + ": pass both offsets and local_shape, or neither (the whole tensor)");
  require((flags & ~(SMP_CKPT_REPLICATED | SMP_CKPT_OPTIMIZER)) == 0,
          f + ": flags " + std::to_string(flags) + " has bits other than SMP_CKPT_REPLICATED | SMP_CKPT_OPTIMIZER");
  const std::string what = f + ": tensor \"" + name + "\"";
  const auto shape = dims(global_shape, ndim);
  smp::ckpt::Piece piece;
  const auto off = offsets ? dims(offsets, ndim) : std::vector<uint64_t>(shape.size(), 0);
  const auto ext = local_shape ? dims(local_shape, ndim) : shape;
  piece = ranged ? smp::ckpt::Piece::box_range(shape, off, ext, range_begin, range_count, what)
                 : smp::ckpt::Piece::box(shape, off, ext, what);
  if (data && smp::comm::classify(data) != smp::comm::MemType::Host)
    throw smp::Error(smp::Status::Unsupported, what + ": data is CUDA memory; checkpoints take host memory");
  try {
    h.ck.add(name, (flags & SMP_CKPT_OPTIMIZER) ? smp::ckpt::Kind::Optimizer : smp::ckpt::Kind::Model, t, piece, data,
             (flags & SMP_CKPT_REPLICATED) != 0);
  } catch (const smp::Error &e) {
    throw smp::Error(e.status(), f + ": " + e.what());
  }
}

// Checkpoint save / load are collective over WORLD; their timeline event
// names the group (bytes vary by rank and layout: left out).
smp::trace::Args world_event() {
  smp::trace::Args a;
  a.group = smp::topo::group_name(smp::topo::Group::World);
  return a;
}

}  // namespace

extern "C" {

smp_status_t smp_ckpt_create(smp_ckpt_t *ckpt) {
  return guarded_any([&] {
    require(ckpt != nullptr, "smp_ckpt_create: ckpt is NULL");
    auto h = std::make_unique<smp_ckpt>();
    adopt(h.get());
    *ckpt = h.release();
  });
}

smp_status_t smp_ckpt_destroy(smp_ckpt_t ckpt) {
  return guarded_any([&] { release(ckpt, "ckpt", "smp_ckpt_destroy"); });
}

smp_status_t smp_ckpt_add_tensor(smp_ckpt_t ckpt, const char *name, smp_dtype_t dtype, int ndim,
                                 const size_t *global_shape, const size_t *offsets, const size_t *local_shape,
                                 void *data, int flags) {
  return guarded_any([&] {
    add(ckpt, "smp_ckpt_add_tensor", name, dtype, ndim, global_shape, offsets, local_shape, false, 0, 0, data, flags);
  });
}

smp_status_t smp_ckpt_add_range(smp_ckpt_t ckpt, const char *name, smp_dtype_t dtype, int ndim,
                                const size_t *global_shape, const size_t *offsets, const size_t *local_shape,
                                size_t range_begin, size_t range_count, void *data, int flags) {
  return guarded_any([&] {
    add(ckpt, "smp_ckpt_add_range", name, dtype, ndim, global_shape, offsets, local_shape, true, range_begin,
        range_count, data, flags);
  });
}

smp_status_t smp_ckpt_set_user(smp_ckpt_t ckpt, const char *key, const void *bytes, size_t len) {
  return guarded_any([&] {
    smp_ckpt &h = live(ckpt, "ckpt", "smp_ckpt_set_user");
    require(key != nullptr, "smp_ckpt_set_user: key is NULL");
    smp::capi::require_ptr(bytes, len, "smp_ckpt_set_user: bytes");
    // Checked before the copy, which could not be made of an absurd length.
    require(len <= smp::ckpt::kMaxUserBytes, "smp_ckpt_set_user: len " + std::to_string(len) +
                                                 " is above the " + std::to_string(smp::ckpt::kMaxUserBytes) +
                                                 " bytes user content may have");
    try {
      h.ck.set_user(key, len ? std::string(static_cast<const char *>(bytes), len) : std::string());
    } catch (const smp::Error &e) {
      smp::invalid(std::string("smp_ckpt_set_user: ") + e.what());
    }
  });
}

smp_status_t smp_ckpt_set_options(smp_ckpt_t ckpt, size_t buffer_bytes, size_t max_file_bytes, int verify) {
  return guarded_any([&] {
    smp_ckpt &h = live(ckpt, "ckpt", "smp_ckpt_set_options");
    require(buffer_bytes == 0 || buffer_bytes >= 4096,
            "smp_ckpt_set_options: buffer_bytes " + std::to_string(buffer_bytes) + " is below 4096 (0 = default)");
    require(verify == 0 || verify == 1, "smp_ckpt_set_options: verify must be 0 or 1");
    h.save.buffer_bytes = buffer_bytes ? buffer_bytes : smp::ckpt::SaveOptions{}.buffer_bytes;
    h.save.max_file_bytes = max_file_bytes;
    h.load.verify = verify == 1;
  });
}

smp_status_t smp_ckpt_save(smp_ckpt_t ckpt, const char *dir, smp_ckpt_mode_t mode, int keep_last) {
  return guarded([&](smp::comm::Context &ctx) {
    smp_ckpt &h = live(ckpt, "ckpt", "smp_ckpt_save");
    require(dir != nullptr && *dir != '\0', "smp_ckpt_save: dir is NULL or empty");
    const int m = smp::capi::raw_enum(mode);  // any int a C caller passed
    require(m == SMP_CKPT_CONSOLIDATED || m == SMP_CKPT_SHARDED,
            "smp_ckpt_save: mode " + std::to_string(m) +
                " is not SMP_CKPT_CONSOLIDATED or SMP_CKPT_SHARDED");
    require(keep_last >= 0, "smp_ckpt_save: keep_last " + std::to_string(keep_last) + " is negative (0 = keep all)");
    smp::comm::CommBootstrap ex(ctx.group(smp::topo::Group::World), &ctx.layout());
    smp::ckpt::SaveOptions opt = h.save;
    opt.sharded = m == SMP_CKPT_SHARDED;
    opt.keep_last = keep_last;
    smp::comm::CallScope call([&] {
      return "smp_ckpt_save(" + smp::capi::quoted(dir) + (m == SMP_CKPT_SHARDED ? ", sharded" : ", consolidated") + ")";
    });
    smp::trace::Scope scope("ckpt_save", world_event());
    h.last_path = h.ck.save(ex, dir, opt);
  });
}

smp_status_t smp_ckpt_load(smp_ckpt_t ckpt, const char *path) {
  return guarded([&](smp::comm::Context &ctx) {
    smp_ckpt &h = live(ckpt, "ckpt", "smp_ckpt_load");
    require(path != nullptr && *path != '\0', "smp_ckpt_load: path is NULL or empty");
    smp::comm::CallScope call([&] { return "smp_ckpt_load(" + smp::capi::quoted(path) + ")"; });
    smp::comm::CommBootstrap ex(ctx.group(smp::topo::Group::World), &ctx.layout());
    smp::trace::Scope scope("ckpt_load", world_event());
    h.last_path = h.ck.load(ex, path, h.load);
  });
}

smp_status_t smp_ckpt_last_path(smp_ckpt_t ckpt, const char **path) {
  return guarded_any([&] {
    smp_ckpt &h = live(ckpt, "ckpt", "smp_ckpt_last_path");
    require(path != nullptr, "smp_ckpt_last_path: path is NULL");
    *path = h.last_path.c_str();
  });
}

smp_status_t smp_ckpt_get_user(smp_ckpt_t ckpt, const char *key, int rank, void *buf, size_t cap, size_t *len) {
  return guarded_any([&] {
    smp_ckpt &h = live(ckpt, "ckpt", "smp_ckpt_get_user");
    require(key != nullptr, "smp_ckpt_get_user: key is NULL");
    require(len != nullptr, "smp_ckpt_get_user: len is NULL");
    require(rank >= -1, "smp_ckpt_get_user: rank " + std::to_string(rank) + " is below -1");
    int r = rank;
    if (r == -1) {
      const smp::comm::Context *ctx = smp::comm::Context::current();
      r = ctx ? ctx->world_rank() : 0;
    }
    std::string v;
    require(h.ck.user(key, r, &v), "smp_ckpt_get_user: no user content \"" + std::string(key) + "\" of rank " +
                                       std::to_string(r) + " in the loaded checkpoint");
    *len = v.size();
    if (buf == nullptr && cap == 0) return;
    require(buf != nullptr, "smp_ckpt_get_user: buf is NULL but cap is " + std::to_string(cap));
    require(cap >= v.size(), "smp_ckpt_get_user: cap " + std::to_string(cap) + " is below the content's " +
                                 std::to_string(v.size()) + " bytes");
    if (!v.empty()) std::memcpy(buf, v.data(), v.size());
  });
}

smp_status_t smp_ckpt_saved_world_size(smp_ckpt_t ckpt, int *size) {
  return guarded_any([&] {
    smp_ckpt &h = live(ckpt, "ckpt", "smp_ckpt_saved_world_size");
    require(size != nullptr, "smp_ckpt_saved_world_size: size is NULL");
    require(h.ck.loaded_world_size() > 0, "smp_ckpt_saved_world_size: nothing loaded yet");
    *size = h.ck.loaded_world_size();
  });
}

smp_status_t smp_safetensors_write(const char *path, const smp_tensor_view_t *tensors, size_t count) {
  return guarded_any([&] {
    require(path != nullptr && *path != '\0', "smp_safetensors_write: path is NULL or empty");
    smp::capi::require_ptr(tensors, count, "smp_safetensors_write: tensors");
    std::vector<smp::ckpt::TensorData> data;
    for (size_t i = 0; i < count; ++i) {
      const smp_tensor_view_t &v = tensors[i];
      const std::string what = "smp_safetensors_write: tensors[" + std::to_string(i) + "]";
      require(v.name != nullptr, what + ".name is NULL");
      require(v.ndim >= 0 && v.ndim <= kMaxDims, what + ".ndim " + std::to_string(v.ndim) + " is outside 0..8");
      require(v.ndim == 0 || v.shape != nullptr, what + ".shape is NULL");
      smp::ckpt::TensorSpec s{v.name, smp::capi::to_dtype(v.dtype, (what + ".dtype").c_str()), dims(v.shape, v.ndim)};
      require(v.data != nullptr || s.bytes() == 0, what + ".data is NULL");
      if (v.data && smp::comm::classify(v.data) != smp::comm::MemType::Host)
        throw smp::Error(smp::Status::Unsupported, what + ".data is CUDA memory; host memory only");
      data.push_back({std::move(s), v.data});
    }
    // Atomic: a reader sees the old file or the new, never a partial one.
    const std::string tmp = std::string(path) + ".tmp" + std::to_string(::getpid());
    try {
      smp::ckpt::write_file(tmp, data);
      smp::ckpt::io::rename_path(tmp, path);
      smp::ckpt::io::fsync_dir(smp::ckpt::io::dir_name(path));
    } catch (const smp::Error &e) {
      std::remove(tmp.c_str());
      throw smp::Error(e.status(), std::string("smp_safetensors_write: ") + e.what());
    }
  });
}

smp_status_t smp_safetensors_open(const char *path, smp_safetensors_t *file) {
  return guarded_any([&] {
    require(path != nullptr, "smp_safetensors_open: path is NULL");
    require(file != nullptr, "smp_safetensors_open: file is NULL");
    auto h = std::make_unique<smp_safetensors>();
    h->reader = std::make_unique<smp::ckpt::Reader>(path);
    for (const auto &t : h->reader->header().tensors) h->shapes.emplace_back(t.shape.begin(), t.shape.end());
    adopt(h.get());
    *file = h.release();
  });
}

smp_status_t smp_safetensors_close(smp_safetensors_t file) {
  return guarded_any([&] { release(file, "file", "smp_safetensors_close"); });
}

smp_status_t smp_safetensors_count(smp_safetensors_t file, size_t *count) {
  return guarded_any([&] {
    smp_safetensors &h = live(file, "file", "smp_safetensors_count");
    require(count != nullptr, "smp_safetensors_count: count is NULL");
    *count = h.reader->header().tensors.size();
  });
}

smp_status_t smp_safetensors_info(smp_safetensors_t file, size_t index, const char **name, smp_dtype_t *dtype,
                                  int *ndim, const size_t **shape) {
  return guarded_any([&] {
    smp_safetensors &h = live(file, "file", "smp_safetensors_info");
    const auto &ts = h.reader->header().tensors;
    require(index < ts.size(), "smp_safetensors_info: index " + std::to_string(index) + " is not below the " +
                                   std::to_string(ts.size()) + " tensors");
    const auto &t = ts[index];
    if (name) *name = t.name.c_str();
    if (ndim) *ndim = static_cast<int>(t.shape.size());
    if (shape) *shape = h.shapes[index].data();
    if (dtype) {
      if (t.smp_dtype < 0)
        throw smp::Error(smp::Status::Unsupported, "smp_safetensors_info: tensor \"" + t.name + "\" has dtype " +
                                                       t.dtype + ", which smp has no type for");
      *dtype = static_cast<smp_dtype_t>(t.smp_dtype);
    }
  });
}

smp_status_t smp_safetensors_read(smp_safetensors_t file, const char *name, void *buf, size_t bytes) {
  return guarded_any([&] {
    smp_safetensors &h = live(file, "file", "smp_safetensors_read");
    require(name != nullptr, "smp_safetensors_read: name is NULL");
    smp::capi::require_ptr(buf, bytes, "smp_safetensors_read: buf");
    if (buf && smp::comm::classify(buf) != smp::comm::MemType::Host)
      throw smp::Error(smp::Status::Unsupported, "smp_safetensors_read: buf is CUDA memory; host memory only");
    try {
      h.reader->read_tensor(name, buf, bytes);
    } catch (const smp::Error &e) {
      throw smp::Error(e.status(), std::string("smp_safetensors_read: ") + e.what());
    }
  });
}

}  // extern "C"
