// Argument validation and the watchdog's message, without MPI.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstddef>
#include <string>

#include "comm/groups.h"
#include "comm/validate.h"
#include "comm/watchdog.h"
#include "common/error.h"

namespace smp::comm {
namespace {

// Runs fn, expecting smp::Error(InvalidArgument) whose message contains needle.
template <class F> void expect_invalid(F fn, const std::string &needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), Status::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Validate, Pointers) {
  validate::pointer("allreduce", "sendbuf", nullptr, 0);  // nothing to read: fine
  int x = 0;
  validate::pointer("allreduce", "sendbuf", &x, 5);
  expect_invalid([] { validate::pointer("allreduce", "recvbuf", nullptr, 5); }, "allreduce: recvbuf is NULL but count is 5");
}

TEST(Validate, Enums) {
  expect_invalid([] { validate::dtype("send", static_cast<DType>(8)); }, "dtype 8");
  expect_invalid([] { validate::dtype("send", static_cast<DType>(-1)); }, "dtype -1");
  expect_invalid([] { validate::reduce_op("allreduce", static_cast<ReduceOp>(5)); }, "op 5");
  validate::reduce_op("allreduce", ReduceOp::Prod);
}

TEST(Validate, CountsThatOverflow) {
  EXPECT_EQ(validate::bytes("allreduce", "count", 10, 1, DType::F64), 80u);
  EXPECT_EQ(validate::bytes("allgather", "sendcount", 10, 3, DType::F16), 60u);
  expect_invalid([] { validate::bytes("allreduce", "count", SIZE_MAX / 2, 1, DType::F32); }, "count");
  expect_invalid([] { validate::bytes("reduce_scatter", "recvcount", SIZE_MAX / 4, 8, DType::I8); }, "recvcount");
  EXPECT_EQ(validate::bytes("allreduce", "count", 0, 8, DType::I64), 0u);
}

TEST(Validate, RanksAndTags) {
  validate::rank("broadcast", "root", 0, 1);
  expect_invalid([] { validate::rank("broadcast", "root", 1, 1); }, "root 1 is out of range: the group has 1 rank (0..0)");
  expect_invalid([] { validate::rank("send", "peer", -1, 4); }, "peer -1");
  validate::tag("send", 0, 32767);
  expect_invalid([] { validate::tag("recv", -1, 32767); }, "tag -1");
  expect_invalid([] { validate::tag("recv", 40000, 32767); }, "tag 40000");
}

TEST(Validate, OverlapUnlessInPlace) {
  char buf[64] = {0};
  validate::no_overlap("allreduce", buf, 16, buf, 16, buf);           // in place
  validate::no_overlap("allreduce", buf, 16, buf + 16, 16, nullptr);  // disjoint
  expect_invalid([&] { validate::no_overlap("allreduce", buf, 16, buf + 8, 16, nullptr); }, "overlap");
  expect_invalid([&] { validate::no_overlap("allgather", buf + 4, 8, buf, 32, buf + 8); }, "overlap");
}

// One Communicator call as data (comm/call.h): which buffers pick the
// backend, the count shown and compared, and the first error of each.
TEST(Validate, CallExtentsAndFirstErrors) {
  int32_t a[12] = {}, b[12] = {};
  size_t counts[3] = {2, 0, 4}, displs[3] = {0, 2, 2};
  Call ag(Op::Allgatherv);
  ag.send = a, ag.count = 0, ag.recv = b, ag.counts = counts, ag.dtype = DType::I32;
  CallExtent x = validate::call(ag, 1, 3, 100);  // rank 1 sends nothing: recvbuf alone decides
  EXPECT_EQ(x.a, b);
  EXPECT_EQ(x.b, b);
  EXPECT_EQ(x.count, 0u);
  ag.count = 2;
  expect_invalid([&] { validate::call(ag, 1, 3, 100); }, "allgatherv: recvcounts[1] is 0 but this rank's sendcount is 2");
  ag.counts = nullptr;
  expect_invalid([&] { validate::call(ag, 1, 3, 100); }, "allgatherv: recvcounts is NULL but count is 1");
  size_t huge[3] = {SIZE_MAX / 2, SIZE_MAX / 2, 4};
  ag.counts = huge, ag.count = 4, ag.dtype = DType::U8;
  expect_invalid([&] { validate::call(ag, 2, 3, 100); }, "allgatherv: the sum of recvcounts overflows");
  // In place: this rank's block of recvbuf.
  Call in(Op::Allgatherv);
  in.send = b + 2, in.count = 0, in.recv = b, in.counts = counts, in.dtype = DType::I32;
  validate::call(in, 1, 3, 100);
  in.send = b + 2, in.count = 4;  // rank 2's block starts after 2 + 0 elements
  validate::call(in, 2, 3, 100);
  in.send = b + 1;
  expect_invalid([&] { validate::call(in, 2, 3, 100); }, "allgatherv: sendbuf and recvbuf overlap");

  Call sc(Op::Scatterv);  // not root: recvbuf alone, root's arguments unread
  sc.recv = b, sc.count = 3, sc.dtype = DType::I32, sc.root = 0;
  x = validate::call(sc, 1, 3, 100);
  EXPECT_EQ(x.a, b);
  EXPECT_EQ(x.b, nullptr);
  sc.root = 3;
  expect_invalid([&] { validate::call(sc, 1, 3, 100); }, "scatterv: root 3 is out of range");

  Call av(Op::Alltoallv);
  size_t none[3] = {0, 0, 0};
  av.send = a, av.counts = none, av.displs = displs, av.recv = b, av.counts2 = counts, av.displs2 = displs;
  av.dtype = DType::I32;
  expect_invalid([&] { validate::call(av, 0, 3, 100); }, "alltoallv: sendcounts[0] is 0 but recvcounts[0] is 2");
  x = validate::call(av, 1, 3, 100);  // sends nothing: recvbuf decides, the count is what it sends
  EXPECT_EQ(x.a, b);
  EXPECT_EQ(x.b, b);
  EXPECT_EQ(x.count, 0u);

  Call ra(Op::RecvAny);  // no peer to check; the tag is
  ra.recv = b, ra.count = 1, ra.dtype = DType::I32, ra.tag = 101;
  expect_invalid([&] { validate::call(ra, 0, 3, 100); }, "recv_any: tag 101 is out of range (0..100)");
  Call bar(Op::Barrier);
  x = validate::call(bar, 0, 3, 100);
  EXPECT_EQ(x.a, nullptr);
  EXPECT_EQ(x.count, 0u);
}

TEST(Watchdog, MessageNamesRankOperationGroupPeerTagCountAndWait) {
  OpInfo info;
  info.op = "recv";
  info.group = topo::Group::PP;
  info.peer = 3;
  info.tag = 42;
  info.count = 1000;
  EXPECT_EQ(timeout_message(5, info, 10.04, 10),
            "smp: rank 5: recv on PP_GROUP (peer 3, root -, tag 42, count 1000) has waited 10.0 s, "
            "longer than SMP_TIMEOUT=10 s; aborting the job");
}

// A created group's name (its handle and world ranks), and its own timeout
// in place of SMP_TIMEOUT.
TEST(Watchdog, MessageNamesACreatedGroupAndItsTimeout) {
  const auto g = static_cast<topo::Group>(kFirstUserGroup + 3);
  EXPECT_EQ(user_group_name(g, {0, 2, 3}), "group 67 (world ranks 0,2,3)");
  EXPECT_EQ(user_group_name(g, {0, 1, 2, 3, 4, 5, 6, 7, 8}), "group 67 (world ranks 0,1,2,3,4,5,...,8; 9 ranks)");
  EXPECT_STREQ(group_label(g), "group 67");  // not registered
  register_user_group(g, {2, 0});
  EXPECT_STREQ(group_label(g), "group 67 (world ranks 2,0)");
  const char *kept = group_label(g);
  OpInfo info;
  info.op = "allreduce";
  info.group = g;
  info.count = 4;
  info.timeout = 2;
  EXPECT_EQ(timeout_message(0, info, 2.04, 2, "not arrived: rank 2 (in no smp operation)"),
            "smp: rank 0: allreduce on group 67 (world ranks 2,0) (peer -, root -, tag -, count 4) has waited "
            "2.0 s, longer than its group's timeout of 2 s (smp_group_set_timeout); not arrived: rank 2 (in no smp "
            "operation); aborting the job");
  EXPECT_EQ(group_members_of(topo::Layout(4, 1, 1), g, 2), (std::vector<int>{2, 0}));
  EXPECT_TRUE(group_members_of(topo::Layout(4, 1, 1), g, 1).empty());  // not a member
  unregister_user_group(g);
  EXPECT_STREQ(kept, "group 67 (world ranks 2,0)");  // outlives the group
  EXPECT_STREQ(group_label(g), "group 67");
  EXPECT_STREQ(group_label(topo::Group::TP), "TP_GROUP");
}

// The user's call (CallScope) comes ahead of the internal operation.
TEST(Watchdog, MessageNamesTheUsersCall) {
  OpInfo info;
  info.op = "gatherv";
  info.root = 0;
  info.count = 24;
  EXPECT_EQ(timeout_message(1, info, 2.06, 2, "not arrived: rank 2 (in no smp operation)",
                            "smp_ckpt_save(\"/tmp/c\", sharded)"),
            "smp: rank 1: smp_ckpt_save(\"/tmp/c\", sharded): gatherv on WORLD (peer -, root 0, tag -, count 24) "
            "has waited 2.1 s, longer than SMP_TIMEOUT=2 s; not arrived: rank 2 (in no smp operation); "
            "aborting the job");
}

// SMP_HANG_REPORT's line: one line, tab-separated, whatever the text holds.
TEST(Watchdog, HangReportLine) {
  EXPECT_EQ(hang_report_line(0, "smp_recv_tensor(peer 2, WORLD, tag 5): irecv (wait) on WORLD",
                             {{2, "in no smp operation"}}),
            "smp-hang\t0\tsmp_recv_tensor(peer 2, WORLD, tag 5): irecv (wait) on WORLD\t2\tin no smp operation");
  EXPECT_EQ(hang_report_line(3, "smp_ckpt_save(\"/a\tb\nc\"): barrier on WORLD", {{1, "x"}, {2, "y\tz"}}),
            "smp-hang\t3\tsmp_ckpt_save(\"/a b c\"): barrier on WORLD\t1\tx\t2\ty z");
  EXPECT_EQ(hang_report_line(4, "allreduce on WORLD", {}), "smp-hang\t4\tallreduce on WORLD");
}

// Outside a watchdog (none runs in this process) a scope costs nothing and
// its description is never built.
TEST(Watchdog, CallScopeWithoutAWatchdogDescribesNothing) {
  bool described = false;
  {
    CallScope call([&] {
      described = true;
      return std::string("smp_send_tensor(...)");
    });
    EXPECT_EQ(CallScope::current(), "");
  }
  EXPECT_FALSE(described);
}

}  // namespace
}  // namespace smp::comm
