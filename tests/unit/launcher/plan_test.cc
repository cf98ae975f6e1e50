// smprun's plan: the exact mpirun command and the rank table, from options,
// hosts and a described host, without MPI. Coordinates are checked against
// a digit-decomposition reference written here.
#include "plan.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <tuple>

#include "rank_env.h"

using namespace smp::launcher;
using smp::topo::Machine;
using Args = std::vector<std::string>;

namespace {

Machine cores_machine(int ncores) {
  Machine m;
  for (int c = 0; c < ncores; ++c) {
    m.cores.push_back({{c}});
    m.cpus.push_back(c);
  }
  m.numa.push_back({0, m.cpus});
  return m;
}

// Two NUMA nodes of 4 cores, one GPU on each.
Machine gpu_machine() {
  Machine m = cores_machine(8);
  m.numa = {{0, {0, 1, 2, 3}}, {1, {4, 5, 6, 7}}};
  m.gpus = {{"0000:07:00.0", "", {0, 1, 2, 3}}, {"0000:87:00.0", "", {4, 5, 6, 7}}};
  return m;
}

HostInfo host(int ncores = 2, bool root = true) {
  HostInfo h;
  h.hostname = "node0.cluster";
  h.is_root = root;
  h.machine = cores_machine(ncores);
  h.mpirun = "/usr/bin/mpirun";
  h.rank_entry = "/x/smprun-rank";
  return h;
}

Options opts(int np, Args program = {"prog", "a"}) {
  Options o;
  o.np = np;
  o.program = std::move(program);
  return o;
}

std::string usage_error(const Options &o, const std::vector<HostSlots> &hosts, const HostInfo &h) {
  try {
    make_plan(o, hosts, h);
  } catch (const UsageError &e) {
    return e.what();
  }
  return "(no error)";
}

// Reference: (pp, tp, rdp) of a rank as digits in placement order.
smp::topo::Coord ref_coord(int rank, int size, int pp, int tp, const std::string &letters) {
  const int rdp = size / (pp * tp);
  smp::topo::Coord c;
  for (size_t i = letters.size(); i-- > 0;) {
    const int ext = letters[i] == 'D' ? rdp : letters[i] == 'P' ? pp : tp;
    (letters[i] == 'D' ? c.rdp : letters[i] == 'P' ? c.pp : c.tp) = rank % ext;
    rank /= ext;
  }
  return c;
}

}  // namespace

TEST(Plan, MpirunCommandAsRootWithMoreRanksThanCores) {
  const Plan p = make_plan(opts(4), {}, host(2, true));
  EXPECT_EQ(p.argv, Args({"/usr/bin/mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np",
                          "4", "/x/smprun-rank", "--np", "4", "--pp", "1", "--tp", "1", "--placement", "DPT",
                          "--bind", "auto", "--master-addr", "127.0.0.1", "--master-port", "29500", "--", "prog",
                          "a"}));
}

TEST(Plan, MpirunCommandNotRootWithinCores) {
  const Plan p = make_plan(opts(2), {}, host(2, false));
  EXPECT_EQ(p.argv, Args({"/usr/bin/mpirun", "--bind-to", "none", "-np", "2", "/x/smprun-rank", "--np", "2", "--pp",
                          "1", "--tp", "1", "--placement", "DPT", "--bind", "auto", "--master-addr", "127.0.0.1",
                          "--master-port", "29500", "--", "prog", "a"}));
}

TEST(Plan, EveryPassThroughFlag) {
  Options o = opts(8);
  o.pp = 2;
  o.tp = 2;
  o.placement = "spread";
  o.bind = "none";
  o.tag_output = true;
  o.exports = {"NCCL_DEBUG=INFO", "PATH"};
  o.mpi_args = "--mca btl 'self,vader' --display-map";
  o.timeout = "2.5";
  o.check = true;
  o.timeline = "/tmp/t l.json";
  o.hosts = "a:4,b:4";
  const Plan p = make_plan(o, parse_hosts(o.hosts), host(2, false));
  // (spread on two equal hosts: dealt round-robin, TP groups inside hosts)
  EXPECT_EQ(p.argv, Args({"/usr/bin/mpirun", "--bind-to", "none", "-np", "8", "-H", "a:4,b:4", "--map-by", "node",
                          "--tag-output",
                          "-x", "NCCL_DEBUG=INFO", "-x", "PATH", "--mca", "btl", "self,vader", "--display-map",
                          "/x/smprun-rank", "--np", "8", "--pp", "2", "--tp", "2", "--placement", "TPD", "--bind",
                          "none", "--timeout", "2.5", "--check", "--timeline", "/tmp/t l.json", "--master-addr", "a",
                          "--master-port", "29500", "--", "prog", "a"}));
  // What smprun hands smprun-rank comes back whole.
  const Args entry(p.argv.begin() + 19, p.argv.end());
  const EntryOptions e = parse_entry_args(entry);
  EXPECT_EQ(e.np, 8);
  EXPECT_EQ(e.placement, "TPD");
  EXPECT_EQ(e.bind, smp::topo::Bind::None);
  EXPECT_EQ(e.timeout, "2.5");
  EXPECT_TRUE(e.check);
  EXPECT_EQ(e.timeline, "/tmp/t l.json");
  EXPECT_EQ(e.program, Args({"prog", "a"}));
}

TEST(Plan, RowsFollowTheLayoutForEveryPlacement) {
  for (const char *placement : {"cluster", "spread", "DPT", "DTP", "PDT", "PTD", "TDP", "TPD"}) {
    Options o = opts(16);
    o.pp = 2;
    o.tp = 4;
    o.placement = placement;
    const Plan p = make_plan(o, {}, host(32));
    const std::string letters = p.layout.placement().letters();
    ASSERT_EQ(p.rows.size(), 16u);
    for (int r = 0; r < 16; ++r) {
      const RankRow &row = p.rows[static_cast<size_t>(r)];
      EXPECT_EQ(row.rank, r);
      EXPECT_EQ(row.coord, ref_coord(r, 16, 2, 4, letters)) << placement << " rank " << r;
      EXPECT_EQ(row.host, "node0.cluster");
      EXPECT_EQ(row.local_rank, r);
      EXPECT_EQ(row.local_size, 16);
      // DP rank: position among the ranks of the same pp stage; MP: of the same replica.
      int dp = 0, mp = 0;
      for (int q = 0; q < r; ++q) {
        const auto c = ref_coord(q, 16, 2, 4, letters);
        dp += c.pp == row.coord.pp;
        mp += c.rdp == row.coord.rdp;
      }
      EXPECT_EQ(row.dp_rank, dp);
      EXPECT_EQ(row.mp_rank, mp);
      EXPECT_EQ(row.binding.device, -1);
      EXPECT_TRUE(row.binding.cpus.empty());
    }
  }
}

TEST(Plan, HostsFillTheirSlotsInTurn) {
  Options o = opts(6);
  o.hosts = "a:2,b:4";
  Plan p = make_plan(o, parse_hosts(o.hosts), host());
  const Args hosts = {"a", "a", "b", "b", "b", "b"};
  const std::vector<int> local = {0, 1, 0, 1, 2, 3}, lsize = {2, 2, 4, 4, 4, 4};
  for (size_t r = 0; r < 6; ++r) {
    EXPECT_EQ(p.rows[r].host, hosts[r]);
    EXPECT_EQ(p.rows[r].local_rank, local[r]);
    EXPECT_EQ(p.rows[r].local_size, lsize[r]);
  }
  EXPECT_TRUE(p.other_hosts);
  EXPECT_EQ(std::count(p.argv.begin(), p.argv.end(), "--oversubscribe"), 0);
  // More ranks than slots: a usage error naming the slots, unless
  // --oversubscribe; then the extra ranks spread.
  o.np = 9;
  EXPECT_EQ(usage_error(o, parse_hosts(o.hosts), host()),
            "9 ranks but the hosts have 6 slots (a:2,b:4); give fewer ranks, more slots, or --oversubscribe");
  o.oversubscribe = true;
  p = make_plan(o, parse_hosts(o.hosts), host());
  EXPECT_EQ(std::count(p.argv.begin(), p.argv.end(), "--oversubscribe"), 1);
  EXPECT_EQ(p.rows[3].host, "a");  // a: 2 + 2 extra, b: 4 + 1 extra
  EXPECT_EQ(p.rows[4].host, "b");
  EXPECT_EQ(p.rows[8].local_size, 5);
  // This host named in -H with more ranks than its cores.
  o.oversubscribe = false;
  o.np = 4;
  o.hosts = "localhost:4";
  p = make_plan(o, parse_hosts(o.hosts), host(2));
  EXPECT_EQ(std::count(p.argv.begin(), p.argv.end(), "--oversubscribe"), 1);
  EXPECT_FALSE(p.other_hosts);
}

TEST(Plan, DefaultRankCountIsTheVisibleGpus) {
  HostInfo h = host();
  EXPECT_EQ(make_plan(opts(0), {}, h).layout.size(), 1);
  h.machine = gpu_machine();
  h.visible = {0, 1};
  const Plan p = make_plan(opts(0), {}, h);
  EXPECT_EQ(p.layout.size(), 2);
  // auto = gpu: each rank its GPU and that GPU's NUMA node.
  EXPECT_EQ(p.rows[0].binding.device, 0);
  EXPECT_EQ(p.rows[0].binding.cpus, smp::topo::CpuSet({0, 1, 2, 3}));
  EXPECT_EQ(p.rows[1].binding.device, 1);
  EXPECT_EQ(p.rows[1].binding.cpus, smp::topo::CpuSet({4, 5, 6, 7}));
  const std::string table = format_table(p);
  EXPECT_NE(table.find("bind auto (gpu)"), std::string::npos) << table;
  EXPECT_NE(table.find("4-7"), std::string::npos) << table;
}

TEST(Plan, UsageErrors) {
  Options o = opts(6);
  o.pp = 4;
  EXPECT_NE(usage_error(o, {}, host()).find("multiple of 4"), std::string::npos);
  o = opts(4);
  o.placement = "DPX";
  EXPECT_NE(usage_error(o, {}, host()).find("unknown placement"), std::string::npos);
  o.placement = "PPT";
  EXPECT_NE(usage_error(o, {}, host()).find("exactly once"), std::string::npos);
  o = opts(4);
  o.bind = "socket";
  EXPECT_NE(usage_error(o, {}, host()).find("auto, gpu, numa, core or none"), std::string::npos);
  o.bind = "gpu";
  EXPECT_NE(usage_error(o, {}, host()).find("needs a GPU"), std::string::npos);
  o = opts(4);
  o.mpi_args = "--mca \"btl";
  EXPECT_NE(usage_error(o, {}, host()).find("unterminated"), std::string::npos);
}

// Products of huge degrees overflow int: each is a usage error naming the
// numbers, never a crash (SIGFPE) or a failed allocation.
TEST(Plan, HugeDegreesAreUsageErrors) {
  Options o = opts(4);
  o.pp = 65536;
  o.tp = 65536;  // pp * tp = 2^32: 0 in int
  EXPECT_NE(usage_error(o, {}, host()).find("cannot be split into pp=65536 x tp=65536"), std::string::npos);
  o = opts(8);
  o.pp = 2147483647;
  o.tp = 2;  // negative in int
  EXPECT_NE(usage_error(o, {}, host()).find("cannot be split"), std::string::npos);
  o = opts(kMaxRanks + 1);
  EXPECT_NE(usage_error(o, {}, host()).find("ranks smprun launches"), std::string::npos);
}

// group_rank_of (O(1)) against Layout::group_rank (lists the members), for
// every group, placement and rank of several shapes.
TEST(Plan, GroupRanksMatchTheLayout) {
  using smp::topo::Group;
  for (const char *letters : {"DPT", "DTP", "PDT", "PTD", "TDP", "TPD"})
    for (const auto &[n, pp, tp] : std::vector<std::tuple<int, int, int>>{{1, 1, 1}, {8, 2, 2}, {24, 3, 2}, {30, 5, 3}}) {
      const smp::topo::Layout l(n, pp, tp, smp::topo::Placement::parse(letters));
      for (int r = 0; r < n; ++r)
        for (Group g : {Group::World, Group::PP, Group::TP, Group::DP, Group::RDP, Group::MP})
          ASSERT_EQ(group_rank_of(l, g, l.coord(r)), l.group_rank(g, r))
              << letters << " n=" << n << " pp=" << pp << " tp=" << tp << " rank " << r << " group " << group_name(g);
    }
}

// A million ranks: the plan is built (linear) and its rows are right,
// checked against the digit reference at spread-out ranks.
TEST(Plan, MillionRanks) {
  Options o = opts(1 << 20);
  o.pp = 16;
  o.tp = 8;
  o.placement = "TPD";
  const Plan p = make_plan(o, {}, host(2));
  ASSERT_EQ(p.rows.size(), size_t{1} << 20);
  const smp::topo::Layout l(1 << 20, 16, 8, smp::topo::Placement::parse("TPD"));
  for (int r = 0; r < (1 << 20); r += 4099) {
    const auto want = ref_coord(r, 1 << 20, 16, 8, "TPD");
    ASSERT_EQ(p.rows[static_cast<size_t>(r)].coord, want) << r;
    ASSERT_EQ(p.rows[static_cast<size_t>(r)].dp_rank, l.group_rank(smp::topo::Group::DP, r)) << r;
    ASSERT_EQ(p.rows[static_cast<size_t>(r)].local_rank, r);
  }
  const std::string table = format_table(p);
  EXPECT_EQ(static_cast<size_t>(std::count(table.begin(), table.end(), '\n')), (size_t{1} << 20) + 2);
}

TEST(Hosts, ParsesOpenMpiSyntax) {
  auto h = parse_hosts("a:2,b,c.example.com:16");
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].name, "a");
  EXPECT_EQ(h[0].slots, 2);
  EXPECT_EQ(h[1].slots, 1);
  EXPECT_EQ(h[2].name, "c.example.com");
  EXPECT_EQ(h[2].slots, 16);
  for (const char *bad : {"", ":2", "a:0", "a:x", "a,,b"}) EXPECT_THROW(parse_hosts(bad), UsageError) << bad;
}

TEST(Hosts, ReadsHostfiles) {
  char path[] = "/tmp/smprun-hostfile-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "# the cluster\nnode1 slots=8 max_slots=16\n\n  node2   # no slots: its cores\n";
  auto h = read_hostfile(path);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].name, "node1");
  EXPECT_EQ(h[0].slots, 8);
  EXPECT_EQ(h[1].name, "node2");
  EXPECT_EQ(h[1].slots, 0);
  Options o = opts(10);
  o.hostfile = path;
  const Plan p = make_plan(o, h, host(2));  // node2 assumed to have this host's 2 cores
  EXPECT_EQ(p.rows[8].host, "node2");
  EXPECT_EQ(std::count(p.argv.begin(), p.argv.end(), "--oversubscribe"), 0);
  std::ofstream(path) << "node1 slots=many\n";
  EXPECT_THROW(read_hostfile(path), UsageError);
  std::ofstream(path) << "# nothing\n";
  EXPECT_THROW(read_hostfile(path), UsageError);
  {  // larger than the bound: refused, not read whole
    std::ofstream big(path);
    for (int i = 0; i < 80000; ++i) big << "node" << i << " slots=1\n";
  }
  EXPECT_THROW(read_hostfile(path), UsageError);
  try {
    read_hostfile("/dev/zero");  // endless: read up to the bound only
    FAIL();
  } catch (const UsageError &e) {
    EXPECT_NE(std::string(e.what()).find("larger than"), std::string::npos) << e.what();
  }
  std::remove(path);
  try {
    read_hostfile(path);
    FAIL();
  } catch (const UsageError &e) {
    EXPECT_NE(std::string(e.what()).find("cannot read hostfile"), std::string::npos);
  }
}

TEST(ShellWords, SplitAndJoinRoundTrip) {
  EXPECT_EQ(split_args(""), Args{});
  EXPECT_EQ(split_args("  --mca btl self  "), Args({"--mca", "btl", "self"}));
  EXPECT_EQ(split_args("-x 'A=b c' \"d\\\"e\" f\\ g ''"), Args({"-x", "A=b c", "d\"e", "f g", ""}));
  EXPECT_THROW(split_args("'open"), UsageError);
  for (const Args &a : {Args{"mpirun", "-np", "4"}, Args{"a b", "it's", "", "$HOME", "x\"y"}})
    EXPECT_EQ(split_args(shell_join(a)), a);
  EXPECT_EQ(shell_join({"mpirun", "-x", "A=1", "/p/q"}), "mpirun -x A=1 /p/q");
}

TEST(Table, HasAHeaderAndOneLinePerRank) {
  Options o = opts(4);
  o.pp = 2;
  o.bind = "core";
  const std::string t = format_table(make_plan(o, {}, host(4)));
  EXPECT_EQ(std::count(t.begin(), t.end(), '\n'), 6);
  EXPECT_EQ(t.rfind("smprun: 4 ranks = pp 2 x tp 1 x rdp 2, placement DPT, bind core\n", 0), 0u) << t;
  EXPECT_NE(t.find("rank  host"), std::string::npos);
  EXPECT_NE(t.find("device  cpus"), std::string::npos);
}

TEST(Plan, SeveralHostsForwardPathsAndSettingsAndPinTheInterface) {
  Options o = opts(4);
  o.hosts = "a:2,b:2";
  o.iface = "eth1";
  o.exports = {"PATH=/opt/bin"};
  HostInfo h = host();
  h.forward = {"PATH", "PYTHONPATH", "SMP_SHM"};
  h.host_port = {{"a", 4321}};
  const Plan p = make_plan(o, parse_hosts(o.hosts), h);
  EXPECT_EQ(p.argv, Args({"/usr/bin/mpirun", "--allow-run-as-root", "--bind-to", "none", "-np", "4", "-H", "a:2,b:2",
                          "--mca", "btl_tcp_if_include", "eth1", "--mca", "oob_tcp_if_include", "eth1", "-x",
                          "NCCL_SOCKET_IFNAME=eth1", "-x", "GLOO_SOCKET_IFNAME=eth1", "-x", "PYTHONPATH", "-x",
                          "SMP_SHM", "-x", "PATH=/opt/bin", "/x/smprun-rank", "--np", "4", "--pp", "1", "--tp", "1",
                          "--placement", "DPT", "--bind", "auto", "--master-addr", "a", "--master-port", "4321",
                          "--", "prog", "a"}));
  EXPECT_EQ(p.remote_hosts, Args({"a", "b"}));
  // Ranks elsewhere are bound there: the table does not guess.
  EXPECT_EQ(p.rows[0].binding.device, -2);
  EXPECT_NE(format_table(p).find("from that host's own hardware"), std::string::npos);
  // The user's MASTER_ADDR / MASTER_PORT win; on this host alone nothing is forwarded.
  h.master_addr = "10.0.0.9";
  h.master_port = "7777";
  const Plan q = make_plan(opts(2), {}, h);
  EXPECT_EQ(std::count(q.argv.begin(), q.argv.end(), "PYTHONPATH"), 0);
  const EntryOptions e = parse_entry_args(Args(q.argv.begin() + 7, q.argv.end()));
  EXPECT_EQ(e.master_addr, "10.0.0.9");
  EXPECT_EQ(e.master_port, "7777");
}

TEST(Plan, TpGroupsSpanningHostsAreCounted) {
  Options o = opts(6);
  o.pp = 3;
  o.tp = 2;
  o.hosts = "a:2,b:2,c:2";
  EXPECT_EQ(make_plan(o, parse_hosts(o.hosts), host()).split_tp_groups, 0);  // cluster: TP fastest
  o.placement = "spread";  // TPD: a TP group's ranks are PP*RDP = 3 apart
  // Slot by slot ({0,1} {2,3} {4,5}) every TP group would span two hosts;
  // dealt round-robin (mpirun --map-by node) ranks 3 apart share a host.
  Plan p = make_plan(o, parse_hosts(o.hosts), host());
  EXPECT_TRUE(p.map_by_node);
  EXPECT_EQ(p.split_tp_groups, 0);
  EXPECT_EQ(std::count(p.argv.begin(), p.argv.end(), "node"), 1);
  const Args round_robin = {"a", "b", "c", "a", "b", "c"};
  const std::vector<int> local = {0, 0, 0, 1, 1, 1};
  for (size_t r = 0; r < 6; ++r) {
    EXPECT_EQ(p.rows[r].host, round_robin[r]);
    EXPECT_EQ(p.rows[r].local_rank, local[r]);
  }
  // Unequal slots: Open MPI's by-node mapping is not r mod n there; slot
  // by slot it stays, and the table says how many TP groups span hosts.
  o.hosts = "a:2,b:4";
  p = make_plan(o, parse_hosts(o.hosts), host());
  EXPECT_FALSE(p.map_by_node);
  EXPECT_EQ(p.split_tp_groups, 2);  // {0,3} {1,4} across a and b; {2,5} on b
  EXPECT_NE(format_table(p).find("(2 TP group(s) span hosts"), std::string::npos);
}

TEST(Plan, SrunLauncher) {
  Options o = opts(4);
  o.launcher = "srun";
  o.iface = "ib0";
  o.tag_output = true;
  o.exports = {"A=1", "B"};
  HostInfo h = host();
  h.mpirun = "/usr/bin/srun";
  h.hosts_from_slurm = true;
  const Plan p = make_plan(o, slurm_hosts("n[1-2]", "2(x2)"), h);
  EXPECT_EQ(p.argv, Args({"/usr/bin/srun", "--ntasks", "4", "--cpu-bind=none", "--kill-on-bad-exit=1", "--mpi=pmix",
                          "--label", "/x/smprun-rank", "--np", "4", "--pp", "1", "--tp", "1", "--placement", "DPT",
                          "--bind", "auto", "--master-addr", "n1", "--master-port", "29500", "--", "prog", "a"}));
  EXPECT_EQ(p.setenv.size(), 5u);
  EXPECT_EQ(p.setenv[0], std::make_pair(std::string("A"), std::string("1")));
  EXPECT_EQ(p.setenv[1], std::make_pair(std::string("NCCL_SOCKET_IFNAME"), std::string("ib0")));
  EXPECT_EQ(p.rows[2].host, "n2");
  EXPECT_EQ(p.rows[3].local_rank, 1);
  // spread over two equal nodes: Slurm's cyclic distribution keeps the TP
  // groups {0,2} {1,3} on one node each.
  o.tp = 2;
  o.placement = "spread";
  const Plan q = make_plan(o, slurm_hosts("n[1-2]", "2(x2)"), h);
  EXPECT_EQ(std::count(q.argv.begin(), q.argv.end(), "--distribution=cyclic"), 1);
  EXPECT_EQ(q.rows[1].host, "n2");
  EXPECT_EQ(q.rows[2].host, "n1");
  EXPECT_EQ(q.split_tp_groups, 0);
}

TEST(Slurm, NodeLists) {
  EXPECT_EQ(expand_nodelist("vm"), Args({"vm"}));
  EXPECT_EQ(expand_nodelist("n[1-3,7],gpu-a"), Args({"n1", "n2", "n3", "n7", "gpu-a"}));
  EXPECT_EQ(expand_nodelist("n[08-10]x,m"), Args({"n08x", "n09x", "n10x", "m"}));
  for (const char *bad : {"", "n[1-", "n[3-1]", "n[a]", "n[[1]]", "a,,b"})
    EXPECT_THROW(expand_nodelist(bad), UsageError) << bad;
  const auto h = slurm_hosts("smp-h[1-2]", "3,1");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[1].name, "smp-h2");
  EXPECT_EQ(h[1].slots, 1);
  EXPECT_THROW(slurm_hosts("a,b", "2(x3)"), UsageError);
}
