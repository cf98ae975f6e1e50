// After a job that hung: what every rank whose SMP_TIMEOUT fired wrote to
// the report file smprun named in SMP_HANG_REPORT (one line each, by the
// watchdog, src/comm/watchdog.h), turned into smprun's last line, which
// names the rank(s) that never arrived rather than the first rank to
// abort (all that mpirun's own message can say).
#pragma once

#include <string>

namespace smp::launcher {

inline constexpr char kHangReportVar[] = "SMP_HANG_REPORT";

// The report's lines are tab-separated: "smp-hang", the waiting rank, what
// it waits in, then (rank, state) for each rank it found absent. Returns
// smprun's line (without the newline), "" when the text holds no report.
// A rank absent for some and waiting itself is not stuck: what it waits in
// is in its own line. With nobody left, the waiting ranks wait on each
// other, and the line says that.
std::string hang_summary(const std::string &report);

}  // namespace smp::launcher
