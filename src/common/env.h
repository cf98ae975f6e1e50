// Numbers from the environment: one parser per kind, each failure an
// InvalidArgument that names the variable, its value and what it must be.
// Unset and empty mean the same thing (the fallback), so `VAR= cmd` turns a
// knob back to its default.
#pragma once

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace smp::env {

// The variable's value, or nullptr when it is unset or empty.
inline const char *value(const char *name) {
  const char *v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

// A whole number in [least, most]; `fallback` when unset. Digits only:
// strtoull alone would also take blanks and a sign ("-1" wraps).
// `what` completes "is not ..." in the error, e.g. "a number of bytes".
inline unsigned long long count(const char *name, unsigned long long fallback, unsigned long long least,
                                const char *what, unsigned long long most = ULLONG_MAX) {
  const char *v = value(name);
  if (!v) return fallback;
  char *end = nullptr;
  errno = 0;
  const unsigned long long x = std::strtoull(v, &end, 10);
  if (!std::isdigit(static_cast<unsigned char>(*v)) || errno != 0 || *end != '\0' || x < least || x > most)
    invalid(std::string(name) + "='" + v + "' is not " + what + " >= " + std::to_string(least));
  return x;
}

// A signed whole number >= least; `fallback` when unset.
inline long long integer(const char *name, long long fallback, long long least) {
  const char *v = value(name);
  if (!v) return fallback;
  char *end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v, &end, 10);
  if (errno != 0 || *end != '\0' || x < least || x > INT_MAX)
    invalid(std::string(name) + "='" + v + "' is not an integer >= " + std::to_string(least));
  return x;
}

// A number of seconds >= 0; `fallback` when unset.
inline double seconds(const char *name, double fallback) {
  const char *v = value(name);
  if (!v) return fallback;
  char *end = nullptr;
  errno = 0;
  const double x = std::strtod(v, &end);
  if (errno != 0 || *end != '\0' || !(x >= 0))
    invalid(std::string(name) + "='" + v + "' is not a number of seconds >= 0");
  return x;
}

}  // namespace smp::env
