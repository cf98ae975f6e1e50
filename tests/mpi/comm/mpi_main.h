// main() for GoogleTest binaries run under mpirun: smp_init(NULL) (the
// layout comes from the SMP_* environment the meson test sets), only rank
// 0 prints the usual report, other ranks print just their failures, and
// every rank exits with the job-wide verdict.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>

#include "smp/smp.h"

namespace smp::test {

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult &r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
  }

 private:
  int rank_;
};

inline int run_all_ranks(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (smp_init(nullptr) != SMP_SUCCESS) {
    std::fprintf(stderr, "smp_init failed: %s\n", smp_last_error());
    return 1;
  }
  int rank = 0;
  smp_rank(SMP_WORLD, &rank);
  if (rank != 0) {
    auto &listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(rank));
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any = 0;
  if (smp_allreduce(&failed, &any, 1, SMP_INT32, SMP_MAX, SMP_WORLD, nullptr) != SMP_SUCCESS) any = 1;
  if (smp_finalize() != SMP_SUCCESS) any = 1;
  return any;
}

}  // namespace smp::test
