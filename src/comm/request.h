// A pending non-blocking operation (isend, irecv, iallreduce, ...).
#pragma once

#include <memory>

namespace smp::comm {

class Request {
 public:
  virtual ~Request() = default;
  // Blocks until the operation completes; throws smp::Error if it failed.
  // Calling it again after completion returns (or throws) the same way.
  virtual void wait() = 0;
  // True once complete (throws smp::Error if it failed); never blocks.
  virtual bool test() = 0;
};

// Destroying a RequestPtr whose operation is still pending first waits for
// it (errors are then dropped), so buffers are never written after their
// request is gone.
using RequestPtr = std::unique_ptr<Request>;

}  // namespace smp::comm
