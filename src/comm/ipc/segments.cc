#include "comm/ipc/segments.h"

namespace smp::comm::ipc {

namespace {

// A published message: '1' + payload when this member succeeded, '0' + why
// not. The first failure in rank order becomes everyone's reason.
std::string ok_message(const std::string &payload) { return "1" + payload; }
std::string failed_message(const std::string &why) { return "0" + why; }

std::optional<std::string> first_failure(const std::vector<std::string> &all, const char *what) {
  for (size_t r = 0; r < all.size(); ++r)
    if (all[r].empty() || all[r][0] != '1')
      return "rank " + std::to_string(r) + " of the group " + what + ": " +
             (all[r].empty() ? std::string("?") : all[r].substr(1));
  return std::nullopt;
}

}  // namespace

std::optional<Segments> open_segments(Bootstrap &boot, SharedMemory &mem, const void *probe, size_t bytes,
                                      std::string *refusal) {
  const int rank = boot.rank(), size = boot.size();
  if (size < 2) {
    *refusal = "a group of one rank has nothing to share";
    return std::nullopt;
  }
  if (size > kMaxInputs) {
    *refusal = "the group has " + std::to_string(size) + " ranks (at most " + std::to_string(kMaxInputs) + ")";
    return std::nullopt;
  }

  // 1. One device for all.
  const std::vector<std::string> keys = boot.allgatherv(mem.key(probe));
  for (int r = 1; r < size; ++r)
    if (keys[static_cast<size_t>(r)] != keys[0]) {
      *refusal = "ranks 0 and " + std::to_string(r) + " of the group use different devices (" + keys[0] +
                 ", " + keys[static_cast<size_t>(r)] + ")";
      return std::nullopt;
    }

  // 2. Every member's segment.
  Segments segs;
  segs.bytes = bytes;
  segs.member.assign(static_cast<size_t>(size), nullptr);
  std::string handle, error;
  segs.local = mem.allocate(bytes, probe, &handle, &error);
  const std::vector<std::string> handles =
      boot.allgatherv(segs.local ? ok_message(handle) : failed_message(error));
  if (auto why = first_failure(handles, "could not allocate its segment")) {
    if (segs.local) mem.release(segs.local);
    *refusal = *why;
    return std::nullopt;
  }
  segs.member[static_cast<size_t>(rank)] = segs.local;

  // 3. Every peer's segment, mapped here.
  error.clear();
  for (int r = 0; r < size && error.empty(); ++r) {
    if (r == rank) continue;
    const void *p = mem.open(handles[static_cast<size_t>(r)].substr(1), &error);
    if (!p) error = "opening rank " + std::to_string(r) + "'s segment: " + error;
    segs.member[static_cast<size_t>(r)] = p;
  }

  // 4. All or nobody.
  const std::vector<std::string> opened = boot.allgatherv(error.empty() ? ok_message("") : failed_message(error));
  if (auto why = first_failure(opened, "could not map a peer's segment")) {
    close_segments(boot, mem, segs);
    *refusal = *why;
    return std::nullopt;
  }
  return segs;
}

void close_segments(Bootstrap &boot, SharedMemory &mem, Segments &segs) {
  void *local = segs.local;
  for (const void *p : segs.member)
    if (p && p != local) mem.close(p);
  segs = Segments{};
  boot.barrier();
  if (local) mem.release(local);
}

}  // namespace smp::comm::ipc
