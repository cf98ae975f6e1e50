// The one error type every layer throws; capi turns it into smp_status_t
// plus smp_last_error(). Values match smp_status_t.
#pragma once

#include <stdexcept>
#include <string>

namespace smp {

enum class Status : int {
  Success = 0,
  InvalidArgument = -1,
  NotInitialized = -2,
  Unsupported = -3,
  Backend = -4,
  Timeout = -5,
  PeerFailed = -6,
  IO = -7,
  Corrupt = -8,
  Internal = -9,
};

class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string &message) : std::runtime_error(message), status_(status) {}
  Status status() const { return status_; }

 private:
  Status status_;
};

[[noreturn]] inline void fail(Status s, const std::string &message) { throw Error(s, message); }
[[noreturn]] inline void invalid(const std::string &message) { throw Error(Status::InvalidArgument, message); }

}  // namespace smp
