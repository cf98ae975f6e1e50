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
  if (!data && piece.numel() > 0) invalid(what + ": data is NULL but the piece has " + std::to_string(piece.numel()) + " elements");
  if (find(kind, name)) invalid(what + ": registered twice on this rank");
  Reg r;
  r.desc.name = name;
  r.desc.kind = kind;
  r.desc.dtype = dtype;
  r.desc.piece = piece;
  r.desc.replicated = replicated;
  r.data = data;
  regs_.push_back(std::move(r));
}

const Checkpoint::Reg *Checkpoint::find(Kind kind, const std::string &name) const {
  for (const auto &r : regs_)
    if (r.desc.kind == kind && r.desc.name == name) return &r;
  return nullptr;
}

void Checkpoint::set_user(const std::string &key, std::string bytes) {
  if (key.empty()) invalid("user content key is empty");
  if (key.size() > 1024) invalid("user content key longer than 1024 bytes");
  user_[key] = std::move(bytes);
}

bool Checkpoint::user(const std::string &key, int saved_rank, std::string *out) const {
  const auto it = loaded_user_.find({saved_rank, key});
  if (it == loaded_user_.end()) return false;
  if (out) *out = it->second;
  return true;
}

}  // namespace smp::ckpt
