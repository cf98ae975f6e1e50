// The chunk pipeline every staged operation runs: chunk k goes device ->
// staging slot (stage_in), through the host exchange (transfer), staging
// slot -> device (stage_out), with two slots in turn, so that the
// device-to-host copy of chunk k+1 and the host-to-device copy of chunk k-1
// run on the copy engine while chunk k is on the wire.
//
//   stage_in(k, slot)  -> ticket of its last copy (0: nothing to copy in)
//   transfer(k, slot)     blocking host exchange on the slot
//   stage_out(k, slot) -> ticket of its last copy (0: nothing to copy out)
//
// Issue order: in(0); then per chunk k: in(k+1), wait, transfer(k), out(k).
// Before the host touches a slot it waits for the chunk's own stage_in and
// for the stage_out that last read that slot (chunk k-2); copies run in
// issue order, so a later ticket covers every earlier copy. Returns when
// every copy has completed (device memory is final, slots are free).
#pragma once

#include <algorithm>
#include <cstddef>

#include "comm/staged/copy_engine.h"

namespace smp::comm::staged {

template <class In, class Transfer, class Out>
void run_pipeline(CopyQueue &q, size_t nchunks, In &&stage_in, Transfer &&transfer, Out &&stage_out) {
  using Ticket = CopyQueue::Ticket;
  if (nchunks == 0) return;
  Ticket slot_out[2] = {0, 0};  // last stage_out issued from each slot
  Ticket latest = 0;
  Ticket next_in = stage_in(size_t{0}, 0);
  latest = std::max(latest, next_in);
  for (size_t k = 0; k < nchunks; ++k) {
    const int slot = static_cast<int>(k % 2);
    const Ticket this_in = next_in;
    if (k + 1 < nchunks) {
      next_in = stage_in(k + 1, 1 - slot);
      latest = std::max(latest, next_in);
    }
    q.wait(std::max(this_in, slot_out[slot]));
    transfer(k, slot);
    const Ticket out = stage_out(k, slot);
    if (out) slot_out[slot] = latest = std::max(latest, out);
  }
  q.wait(latest);
}

}  // namespace smp::comm::staged
