// The timeline file (SMP_TIMELINE=path): every rank's recorded events
// (trace/timeline.h) gathered into one Chrome-trace JSON file (loads in
// Perfetto and chrome://tracing), one track (pid) per rank. Above comm
// because the gather needs the world communicator.
#pragma once

#include <string>
#include <vector>

#include "comm/communicator.h"
#include "trace/timeline.h"

namespace smp::pipeline::timeline {

// Collective over `world`: gathers every rank's events (comm::CommBootstrap's
// allgatherv), and rank 0 writes SMP_TIMELINE's file (or `path` when
// given); clears the buffers. A no-op (still collective-free) when the
// timeline is off. Times are aligned on a barrier, so tracks of different
// hosts line up to within the barrier's skew.
void write_timeline(comm::Communicator &world, const std::string &path = "");

// For smp_finalize. Collective over `world` when the timeline is on (a
// no-op otherwise): one small allreduce agrees on whether every rank is
// `healthy` (has seen no communication failure), whether any rank has
// events pending and whether the file was ever written; writes it (as
// write_timeline) only when all are healthy, some events are pending and
// it was never written. The agreement makes every rank take the same
// branch, so no rank is left alone in the write's collectives. Returns
// whether it wrote.
bool write_at_finalize(comm::Communicator &world, bool healthy);

// Pure: one rank's events as a JSON array of Chrome-trace complete events
// (pid = rank, times in microseconds from offset_us, to the nanosecond).
std::string events_json(const std::vector<trace::Event> &events, int rank, double offset_us);

}  // namespace smp::pipeline::timeline
