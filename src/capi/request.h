// What an smp_request_t points to: the C++ request it owns.
#pragma once

#include "comm/request.h"

struct smp_request {
  smp::comm::RequestPtr req;
};

namespace smp::capi {

// Stores req in a new smp_request for *out (validated non-null by the caller).
inline void hand_out(comm::RequestPtr req, smp_request **out) {
  *out = new smp_request{std::move(req)};
}

}  // namespace smp::capi
