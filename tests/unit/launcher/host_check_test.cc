// smprun's checks of the other hosts: the reply smprun-rank --check-host
// gives, how ssh's outcome is read, and that the hosts are asked at once.
#include "host_check.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>

using namespace smp::launcher;
using Args = std::vector<std::string>;

TEST(HostCheck, ReadsSshOutcomes) {
  const std::string entry = "/opt/smp/bin/smprun-rank";
  HostCheck c = parse_check("h1", 0, false, "ok h1.cluster 64 40001\n", "", entry);
  EXPECT_TRUE(c.ok);
  EXPECT_EQ(c.hostname, "h1.cluster");
  EXPECT_EQ(c.cores, 64);
  EXPECT_EQ(c.free_port, 40001);
  c = parse_check("h2", 255, false, "", "ssh: connect to host h2 port 22: Connection refused\n", entry);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.reason, "unreachable (ssh: connect to host h2 port 22: Connection refused)");
  c = parse_check("h3", 127, false, "", "sh: 1: exec: /opt/smp/bin/smprun-rank: not found\n", entry);
  EXPECT_EQ(c.reason, "has no smprun-rank at /opt/smp/bin/smprun-rank (install smp at the same path on every host)");
  c = parse_check("h4", 1, false, "error runs smp 0.1.0, smprun is smp 0.2.0\n", "", entry);
  EXPECT_EQ(c.reason, "runs smp 0.1.0, smprun is smp 0.2.0");
  c = parse_check("h5", 1, false, "", "smprun-rank: unknown argument '--check-host'\n", entry);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.reason.find("did not answer the check"), std::string::npos);
  c = parse_check("h6", -1, true, "", "", entry);
  EXPECT_EQ(c.reason.rfind("unreachable (no answer", 0), 0u) << c.reason;
}

TEST(HostCheck, RepliesForThisHost) {
  int status = -1;
  std::string r = check_host_reply(SMP_VERSION_STRING, "/usr/bin:/bin", "sh", &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(r.rfind("ok ", 0), 0u) << r;
  const HostCheck c = parse_check("x", status, false, r, "", "e");
  EXPECT_TRUE(c.ok);
  EXPECT_EQ(c.cores, sysconf(_SC_NPROCESSORS_ONLN));
  EXPECT_GT(c.free_port, 0);
  r = check_host_reply("0.0.0-other", "/usr/bin:/bin", "sh", &status);
  EXPECT_EQ(status, 1);
  EXPECT_EQ(r, std::string("error runs smp ") + SMP_VERSION_STRING + ", smprun is smp 0.0.0-other");
  r = check_host_reply(SMP_VERSION_STRING, "/nonexistent", "sh", &status);
  EXPECT_EQ(r.rfind("error has no program 'sh' on PATH /nonexistent", 0), 0u) << r;
  r = check_host_reply(SMP_VERSION_STRING, "/usr/bin", "/nonexistent/prog", &status);
  EXPECT_EQ(r.rfind("error has no program '/nonexistent/prog' (", 0), 0u) << r;
  EXPECT_EQ(check_command("/a b/smprun-rank", "1.0", "/x:/y", "prog"),
            "exec '/a b/smprun-rank' --check-host 1.0 /x:/y prog");
  EXPECT_EQ(check_command("/e", "1.0", "/x", "./prog", "/work/my job"),
            "cd '/work/my job' 2>/dev/null; exec /e --check-host 1.0 /x ./prog");
}

TEST(HostCheck, AsksEveryHostAtOnce) {
  // A stand-in for ssh: `sh -c SCRIPT x HOST COMMAND` runs COMMAND.
  const Args agent = {"/bin/sh", "-c", "shift; eval \"$1\"", "x"};
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<HostCheck> got =
      check_hosts({"a", "b", "c", "d"}, agent, "sleep 1; echo ok here 2 5000", "e", 20);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(got.size(), 4u);
  for (const HostCheck &c : got) EXPECT_TRUE(c.ok) << c.host << ": " << c.reason;
  EXPECT_EQ(got[2].host, "c");
  EXPECT_LT(took, 2.5);  // four hosts of one second each: one second
  // A host that never answers is unreachable once the time is up.
  const auto t1 = std::chrono::steady_clock::now();
  const std::vector<HostCheck> silent = check_hosts({"s"}, agent, "sleep 30", "e", 0.5);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count(), 5.0);
  ASSERT_EQ(silent.size(), 1u);
  EXPECT_EQ(silent[0].reason.rfind("unreachable (no answer", 0), 0u) << silent[0].reason;
  // ssh itself missing: unreachable, saying why.
  const std::vector<HostCheck> none = check_hosts({"n"}, {"/nonexistent/ssh"}, "true", "e", 5);
  EXPECT_FALSE(none[0].ok);
}
