// A folder of checkpoints and the rules that keep one from ever being lost:
//
//   ROOT/ckpt-00000007/        complete: renamed into place after its
//                              MANIFEST.json was written and fsynced
//   ROOT/.tmp-ckpt-00000008/   being written (or left by a killed save)
//   ROOT/.del-ckpt-00000003/   being deleted (renamed away first, so a
//                              half-deleted checkpoint never looks complete)
//   ROOT/latest                "ckpt-00000007": pointer for people and tools
//
// A checkpoint is complete iff it has its final name and a MANIFEST.json.
// Loading takes the newest complete one; `latest` is only ever advanced to
// a complete checkpoint, so it never points at a partial one. A save that
// fails to write `latest` takes its checkpoint back out of sight, so a
// reported failure never loads; a save killed between its rename and the
// pointer update leaves `latest` one behind (the new checkpoint is whole
// and is what a load takes) until the next save repairs it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace smp::ckpt::store {

std::string name_of(uint64_t seq);      // "ckpt-00000007"
std::string tmp_name_of(uint64_t seq);  // ".tmp-ckpt-00000007"

// Sequence numbers of complete checkpoints under root, ascending.
std::vector<uint64_t> complete(const std::string &root);
// One past the largest sequence number in use by any entry (complete,
// temporary or being deleted).
uint64_t next_seq(const std::string &root);
// Removes leftovers of killed saves and deletions (.tmp-*, .del-*) and
// points `latest` at the newest complete checkpoint if it lags.
void clean_leftovers(const std::string &root);
// Makes tmp complete: fsync it, rename to its final name, fsync root, then
// advance `latest`. Returns the final path.
std::string commit(const std::string &root, uint64_t seq);
// Deletes complete checkpoints beyond the newest keep (keep == 0: none).
void prune(const std::string &root, int keep);
// The checkpoint to load for `path`: path itself if it holds a manifest,
// else the newest complete checkpoint under it. Throws IO if there is none.
std::string resolve(const std::string &path);

}  // namespace smp::ckpt::store
