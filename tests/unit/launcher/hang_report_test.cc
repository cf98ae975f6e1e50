// smprun's last line after a hang, from the watchdogs' report lines
// (src/comm/watchdog.h hang_report_line writes them).
#include "hang_report.h"

#include <gtest/gtest.h>

using smp::launcher::hang_summary;

namespace {

TEST(HangReport, NoReportNoLine) {
  EXPECT_EQ(hang_summary(""), "");
  EXPECT_EQ(hang_summary("something else\n\nsmp-hang\tx\tfoo\n"), "");
}

// Every waiting rank names the one that never joined; the line names it,
// not the first rank to abort.
TEST(HangReport, NamesTheRankThatNeverArrived) {
  const std::string report =
      "smp-hang\t1\tsmp_ckpt_save(\"/c\", sharded): broadcast on WORLD\t2\tin no smp operation\n"
      "smp-hang\t0\tsmp_ckpt_save(\"/c\", sharded): gatherv on WORLD\t2\tin no smp operation\n";
  EXPECT_EQ(hang_summary(report),
            "smprun: hang: rank 2 (in no smp operation) never arrived; ranks 0, 1 waited for it past "
            "SMP_TIMEOUT (rank 0 in smp_ckpt_save(\"/c\", sharded): gatherv on WORLD)");
}

TEST(HangReport, SeveralStuckRanks) {
  const std::string report =
      "smp-hang\t0\tallreduce on WORLD\t2\tin no smp operation\t3\tno answer: stuck outside smp or dead\n"
      "smp-hang\t1\tallreduce on WORLD\t3\tno answer: stuck outside smp or dead\n";
  EXPECT_EQ(hang_summary(report),
            "smprun: hang: ranks 2 (in no smp operation), 3 (no answer: stuck outside smp or dead) never arrived; "
            "ranks 0, 1 waited for them past SMP_TIMEOUT (rank 0 in allreduce on WORLD)");
}

// A rank absent from one group but waiting on another is not stuck.
TEST(HangReport, AnAbsentRankThatWaitsIsNotStuck) {
  const std::string report =
      "smp-hang\t0\tallreduce on WORLD\t1\twaiting in barrier on TP_GROUP\t2\tin no smp operation\n"
      "smp-hang\t1\tbarrier on TP_GROUP\t3\tin no smp operation\n";
  EXPECT_EQ(hang_summary(report),
            "smprun: hang: ranks 2 (in no smp operation), 3 (in no smp operation) never arrived; ranks 0, 1 "
            "waited for them past SMP_TIMEOUT (rank 0 in allreduce on WORLD)");
}

// Two ranks each receiving from the other: nobody is outside smp.
TEST(HangReport, RanksWaitingOnEachOther) {
  const std::string report =
      "smp-hang\t0\trecv on WORLD\t1\twaiting in recv on WORLD\n"
      "smp-hang\t1\trecv on WORLD\t0\twaiting in recv on WORLD\n";
  EXPECT_EQ(hang_summary(report),
            "smprun: hang: rank 0 waited in recv on WORLD; rank 1 waited in recv on WORLD "
            "(each past SMP_TIMEOUT, none stuck outside them)");
}

// Torn or foreign lines are skipped; a rank's first line counts.
TEST(HangReport, SkipsMalformedLines) {
  const std::string report =
      "smp-hang\t0\tallreduce on WORLD\t2\n"                  // odd field count
      "smp-hang\t-1\tx\t2\ty\n"                               // bad rank
      "smp-hang\t1\tallreduce on WORLD\t2\tin no smp operation\n"
      "smp-hang\t1\tlater on WORLD\t2\tother\n"
      "smp-hang\t0\tallreduce on WORLD\t2\tin no smp oper";   // cut short, no newline: still a line
  EXPECT_EQ(hang_summary(report),
            "smprun: hang: rank 2 (in no smp operation) never arrived; ranks 0, 1 waited for it past "
            "SMP_TIMEOUT (rank 0 in allreduce on WORLD)");
}

}  // namespace
