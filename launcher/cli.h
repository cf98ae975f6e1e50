// smprun's command line: CLI11 over the flags of DESIGN.md's smprun section.
#pragma once

#include <string>
#include <vector>

#include "options.h"

namespace smp::launcher {

struct Command {
  enum Kind { Run, Help, Version } kind = Run;
  std::string text;  // what to print for Help and Version
  Options options;   // for Run
};

// `args` is argv without argv[0]. Options come first; the first argument
// that is not an option (or whatever follows "--") starts the program, and
// everything from there on is passed to it untouched. Throws UsageError with
// one line for every mistake: CLI11's parse errors, unknown options, a
// missing program, values out of range, -H together with --hostfile.
Command parse_command_line(const std::vector<std::string> &args);

}  // namespace smp::launcher
