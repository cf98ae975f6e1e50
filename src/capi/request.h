// What an smp_request_t points to: the C++ request it owns, the timeline
// args of the call that posted it (its smp_wait event's), and that call's
// label for the watchdog (comm::CallScope; "" when none or no watchdog).
#pragma once

#include <string>

#include "capi/guard.h"
#include "comm/request.h"
#include "trace/timeline.h"

struct smp_request {
  smp::comm::RequestPtr req;
  smp::trace::Args event;
  std::string call;
};

namespace smp::capi {

// Stores req in a new smp_request for *out (validated non-null by the
// caller); `call` describes the posting call, for the timeline.
inline void hand_out(comm::RequestPtr req, smp_request **out, const Call &call) {
  *out = new smp_request{std::move(req), {}, {}};
  if (trace::enabled()) (*out)->event = event_args(call);
}

}  // namespace smp::capi
