// A group's shared segments, set up on its first collective over device
// memory by its members alone (over the group's Bootstrap):
//
//   1. every member publishes the key of the memory its buffers live in
//      (SharedMemory::key); the group is served only if every key is equal
//      (one GPU) and it has 2 to kMaxInputs members;
//   2. every member allocates its segment and publishes its handle, or why
//      the allocation failed;
//   3. every member opens every peer's segment and publishes whether that
//      worked;
//   4. all or nobody: when anything failed anywhere, every member closes
//      and frees what it made, and all of them decline together.
//
// Every decision is taken from gathered data, so every member takes the
// same one and gives the same reason.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "comm/bootstrap.h"
#include "comm/ipc/shared_memory.h"

namespace smp::comm::ipc {

struct Segments {
  void *local = nullptr;             // this member's segment
  std::vector<const void *> member;  // member r's segment as mapped here; [rank] == local
  size_t bytes = 0;                  // of each segment
};

// The group's segments of `bytes` each, where `probe` (one of this
// member's buffers) lives; std::nullopt with *refusal set when the group
// declined (the same text on every member).
std::optional<Segments> open_segments(Bootstrap &boot, SharedMemory &mem, const void *probe, size_t bytes,
                                      std::string *refusal);
// Collective: closes the peers' segments, waits until every member has
// closed its mappings (freeing a segment still mapped elsewhere is
// undefined in CUDA), then frees this member's. When the wait fails (throws)
// this member's segment is left allocated rather than freed under a peer.
void close_segments(Bootstrap &boot, SharedMemory &mem, Segments &segs);

}  // namespace smp::comm::ipc
