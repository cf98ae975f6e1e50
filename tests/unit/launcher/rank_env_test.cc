// The per-rank half: who a rank is (from Open MPI, PMIx, Slurm or Hydra
// variables) and the environment its program gets, checked against a
// reference that enumerates group members by coordinates.
#include "rank_env.h"

#include <gtest/gtest.h>

#include <map>
#include <stdexcept>

using namespace smp::launcher;
using smp::topo::Layout;
using smp::topo::Placement;

namespace {

using Vars = std::map<std::string, std::string>;

GetEnv from(const Vars &vars) {
  return [&vars](const char *name) -> const char * {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

RankIds ids_of(const Vars &v, int expected = 0) { return read_rank_ids(from(v), expected); }

// Reference coordinates: digits of the rank in placement order.
std::array<int, 3> coord(int rank, int size, int pp, int tp, const std::string &letters) {
  std::map<char, int> ext = {{'D', size / (pp * tp)}, {'P', pp}, {'T', tp}}, digit;
  for (size_t i = letters.size(); i-- > 0;) {
    digit[letters[i]] = rank % ext[letters[i]];
    rank /= ext[letters[i]];
  }
  return {digit['P'], digit['T'], digit['D']};  // pp, tp, rdp
}

// Rank within the group that holds the axes in `fixed` (0 pp, 1 tp, 2 rdp)
// equal, and the group's size.
std::pair<int, int> group(int rank, int size, int pp, int tp, const std::string &l, std::vector<int> fixed) {
  const auto me = coord(rank, size, pp, tp, l);
  int before = 0, count = 0;
  for (int q = 0; q < size; ++q) {
    const auto c = coord(q, size, pp, tp, l);
    bool same = true;
    for (int a : fixed) same = same && c[static_cast<size_t>(a)] == me[static_cast<size_t>(a)];
    if (!same) continue;
    ++count;
    before += q < rank;
  }
  return {before, count};
}

}  // namespace

TEST(RankIds, OpenMpi) {
  const Vars v = {{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"},
                  {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"},
                  {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}};  // stale Slurm values lose
  const RankIds ids = ids_of(v, 8);
  EXPECT_EQ(ids.rank, 5);
  EXPECT_EQ(ids.size, 8);
  EXPECT_EQ(ids.local_rank, 1);
  EXPECT_EQ(ids.local_size, 4);
}

TEST(RankIds, PmixAndSlurm) {
  const Vars v = {{"PMIX_RANK", "6"}, {"SLURM_NTASKS", "7"}, {"SLURM_LOCALID", "0"},
                  {"SLURM_TASKS_PER_NODE", "3(x2),1"}, {"SLURM_NODEID", "2"}};
  const RankIds ids = ids_of(v);
  EXPECT_EQ(ids.rank, 6);
  EXPECT_EQ(ids.size, 7);
  EXPECT_EQ(ids.local_rank, 0);
  EXPECT_EQ(ids.local_size, 1);
  Vars step = v;
  step["SLURM_STEP_TASKS_PER_NODE"] = "2,2,3";  // the step's count wins over the job's
  EXPECT_EQ(ids_of(step).local_size, 3);
}

TEST(RankIds, HydraAndExpectedSize) {
  const Vars v = {{"PMI_RANK", "2"}, {"MPI_LOCALRANKID", "2"}, {"MPI_LOCALNRANKS", "3"}};
  const RankIds ids = ids_of(v, 3);  // no size variable: smprun's planned size
  EXPECT_EQ(ids.size, 3);
  EXPECT_EQ(ids.local_size, 3);
}

TEST(RankIds, MissingOrInconsistentVariablesThrow) {
  EXPECT_THROW(ids_of({}), std::runtime_error);
  EXPECT_THROW(ids_of({{"PMIX_RANK", "0"}}, 1), std::runtime_error);  // no local rank
  const Vars ok = {{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                   {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}};
  EXPECT_NO_THROW(ids_of(ok, 2));
  EXPECT_THROW(ids_of(ok, 4), std::runtime_error);  // planned 4 ranks, launched 2
  for (const auto &[name, value] : Vars{{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_RANK", "x"},
                                        {"OMPI_COMM_WORLD_LOCAL_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "-1"},
                                        {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}}) {
    Vars bad = ok;
    bad[name] = value;
    EXPECT_THROW(ids_of(bad), std::runtime_error) << name << "=" << value;
  }
}

TEST(RankIds, SlurmTasksPerNode) {
  EXPECT_EQ(parse_slurm_tasks_per_node("4"), std::vector<int>({4}));
  EXPECT_EQ(parse_slurm_tasks_per_node("2(x3),1"), std::vector<int>({2, 2, 2, 1}));
  EXPECT_EQ(parse_slurm_tasks_per_node("1,8(x2)"), std::vector<int>({1, 8, 8}));
  for (const char *bad : {"", "x", "2(x", "2(x0)", "2(y3)", "2,,3"})
    EXPECT_THROW(parse_slurm_tasks_per_node(bad), std::invalid_argument) << bad;
}

TEST(EntryArgs, RoundTripAndRejectJunk) {
  EntryOptions o;
  o.np = 12;
  o.pp = 3;
  o.tp = 2;
  o.placement = "PTD";
  o.bind = smp::topo::Bind::Numa;
  o.timeout = "60";
  o.check = true;
  o.timeline = "/t.json";
  o.program = {"python3", "-c", "print(1)", "--", "--np"};
  const EntryOptions b = parse_entry_args(entry_args(o));
  EXPECT_EQ(b.np, 12);
  EXPECT_EQ(b.pp, 3);
  EXPECT_EQ(b.tp, 2);
  EXPECT_EQ(b.placement, "PTD");
  EXPECT_EQ(b.bind, smp::topo::Bind::Numa);
  EXPECT_EQ(b.timeout, "60");
  EXPECT_TRUE(b.check);
  EXPECT_EQ(b.timeline, "/t.json");
  EXPECT_EQ(b.program, o.program);
  using A = std::vector<std::string>;
  for (const A &bad : {A{"--np", "2"}, A{"--np", "0", "--", "p"}, A{"--what", "--", "p"}, A{"--pp"},
                       A{"--placement", "XYZ", "--", "p"}, A{"--bind", "sockets", "--", "p"}})
    EXPECT_THROW(parse_entry_args(bad), std::invalid_argument);
}

TEST(RankEnv, EveryVariableForEveryRankAndLayout) {
  struct Case {
    int size, pp, tp;
    const char *placement;
  };
  for (const Case &c : {Case{1, 1, 1, "DPT"}, Case{8, 2, 2, "TPD"}, Case{8, 2, 1, "DPT"}, Case{12, 3, 2, "PDT"},
                        Case{6, 1, 3, "TDP"}, Case{16, 2, 4, "DTP"}, Case{9, 3, 3, "PTD"}}) {
    const Layout layout(c.size, c.pp, c.tp, Placement::parse(c.placement));
    EntryOptions o;
    for (int r = 0; r < c.size; ++r) {
      RankIds ids{r, c.size, r % 4, 4};
      smp::topo::RankBinding b;
      b.device = r % 2 ? 1 : -1;
      const EnvList env = rank_env(layout, ids, b, o);
      std::vector<std::string> names;
      std::map<std::string, std::string> got;
      for (const auto &[k, v] : env) {
        names.push_back(k);
        got[k] = v;
      }
      EXPECT_EQ(names, std::vector<std::string>({"SMP_RANK", "SMP_SIZE", "SMP_LOCAL_RANK", "SMP_LOCAL_SIZE",
                                                 "SMP_PP_RANK", "SMP_PP_SIZE", "SMP_TP_RANK", "SMP_TP_SIZE",
                                                 "SMP_RDP_RANK", "SMP_RDP_SIZE", "SMP_DP_RANK", "SMP_DP_SIZE",
                                                 "SMP_MP_RANK", "SMP_MP_SIZE", "SMP_PLACEMENT", "SMP_DEVICE",
                                                 "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"}));
      const std::map<std::string, std::vector<int>> fixed = {
          {"PP", {1, 2}}, {"TP", {0, 2}}, {"RDP", {0, 1}}, {"DP", {0}}, {"MP", {2}}};
      for (const auto &[g, axes] : fixed) {
        const auto [gr, gs] = group(r, c.size, c.pp, c.tp, c.placement, axes);
        EXPECT_EQ(got["SMP_" + g + "_RANK"], std::to_string(gr)) << g << " rank " << r << " " << c.placement;
        EXPECT_EQ(got["SMP_" + g + "_SIZE"], std::to_string(gs)) << g;
      }
      EXPECT_EQ(got["SMP_RANK"], std::to_string(r));
      EXPECT_EQ(got["RANK"], std::to_string(r));
      EXPECT_EQ(got["SMP_SIZE"], std::to_string(c.size));
      EXPECT_EQ(got["WORLD_SIZE"], std::to_string(c.size));
      EXPECT_EQ(got["SMP_LOCAL_RANK"], std::to_string(r % 4));
      EXPECT_EQ(got["LOCAL_RANK"], std::to_string(r % 4));
      EXPECT_EQ(got["SMP_LOCAL_SIZE"], "4");
      EXPECT_EQ(got["LOCAL_WORLD_SIZE"], "4");
      EXPECT_EQ(got["SMP_PLACEMENT"], c.placement);
      EXPECT_EQ(got["SMP_DEVICE"], r % 2 ? "1" : "-1");
    }
  }
}

TEST(RankEnv, OptionalVariablesOnlyWhenGiven) {
  const Layout layout(2, 1, 1);
  EntryOptions o;
  o.timeout = "2.5";
  o.check = true;
  o.timeline = "/tmp/x.json";
  std::map<std::string, std::string> got;
  for (const auto &[k, v] : rank_env(layout, {0, 2, 0, 2}, {}, o)) got[k] = v;
  EXPECT_EQ(got["SMP_TIMEOUT"], "2.5");
  EXPECT_EQ(got["SMP_CHECK"], "1");
  EXPECT_EQ(got["SMP_TIMELINE"], "/tmp/x.json");
  for (const auto &[k, v] : rank_env(layout, {0, 2, 0, 2}, {}, EntryOptions{}))
    EXPECT_TRUE(k != "SMP_TIMEOUT" && k != "SMP_CHECK" && k != "SMP_TIMELINE") << k;
}
