#include "ckpt/checkpoint.h"

#include "common/error.h"

namespace smp::ckpt {

void Checkpoint::add(const std::string &name, Kind kind, DType dtype, const Piece &piece, void *data,
                     bool replicated) {
  const std::string what = std::string(kind_name(kind)) + " tensor \"" + name + "\"";
  if (name.empty()) invalid("tensor name is empty");
  if (name.compare(0, 2, "__") == 0) invalid(what + ": names starting with \"__\" are reserved by safetensors");
  if (name.size() > 4096) invalid(what + ": name longer than 4096 bytes");
  if (!dtype_valid(static_cast<int>(dtype))) invalid(what + ": bad dtype");
  // Its byte size must fit in memory and in a file: caught here rather
  // than at the first save.
  uint64_t bytes = dtype_size(dtype);
  for (uint64_t d : piece.shape())
    if (d != 0 && bytes > UINT64_MAX / d) invalid(what + ": its byte size overflows 64 bits");
    else bytes *= d;
  if (!data && piece.numel() > 0) invalid(what + ": data is NULL but the piece has " + std::to_string(piece.numel()) + " elements");
  if (find(kind, name)) invalid(what + ": registered twice on this rank");
  Reg r;
  r.desc.name = name;
  r.desc.kind = kind;
  r.desc.dtype = dtype;
  r.desc.piece = piece;
  r.desc.replicated = replicated;
  r.data = data;
  reg_at_.emplace(std::make_pair(static_cast<int>(kind), name), regs_.size());
  regs_.push_back(std::move(r));
}

const Checkpoint::Reg *Checkpoint::find(Kind kind, const std::string &name) const {
  const auto it = reg_at_.find({static_cast<int>(kind), name});
  return it == reg_at_.end() ? nullptr : &regs_[it->second];
}

void Checkpoint::set_user(const std::string &key, std::string bytes) {
  if (key.empty()) invalid("user content key is empty");
  if (key.size() > 1024) invalid("user content key longer than 1024 bytes");
  if (bytes.size() > kMaxUserBytes)
    invalid("user content \"" + key + "\" has " + std::to_string(bytes.size()) + " bytes, more than the " +
            std::to_string(kMaxUserBytes) + " allowed");
  user_[key] = std::move(bytes);
}

bool Checkpoint::user(const std::string &key, int saved_rank, std::string *out) const {
  const auto it = loaded_user_.find({saved_rank, key});
  if (it == loaded_user_.end()) return false;
  if (out) *out = it->second;
  return true;
}

}  // namespace smp::ckpt
