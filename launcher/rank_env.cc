#include "rank_env.h"

#include <stdexcept>

namespace smp::launcher {

namespace {

// A non-negative decimal that fits an int, or -1.
int to_int(const char *text) {
  if (text == nullptr || *text == '\0') return -1;
  long v = 0;
  for (const char *p = text; *p; ++p) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
    if (v > 1 << 30) return -1;
  }
  return static_cast<int>(v);
}

struct Source {
  const char *name;
  int value;
};

// The first of `names` that is set; throws if it is set but not a number.
Source first_of(const GetEnv &getenv, std::initializer_list<const char *> names) {
  for (const char *n : names) {
    const char *v = getenv(n);
    if (v == nullptr) continue;
    const int i = to_int(v);
    if (i < 0) throw std::runtime_error(std::string(n) + "='" + v + "' is not a non-negative integer");
    return {n, i};
  }
  return {nullptr, -1};
}

}  // namespace

std::vector<int> parse_slurm_tasks_per_node(const std::string &text) {
  std::vector<int> out;
  size_t pos = 0;
  const std::string bad = "bad Slurm tasks-per-node list '" + text + "'";
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(pos, comma - pos);
    const size_t paren = item.find("(x");
    const int count = to_int(item.substr(0, paren).c_str());
    int repeat = 1;
    if (paren != std::string::npos) {
      if (item.back() != ')') throw std::invalid_argument(bad);
      repeat = to_int(item.substr(paren + 2, item.size() - paren - 3).c_str());
    }
    if (count < 0 || repeat < 1) throw std::invalid_argument(bad);
    out.insert(out.end(), static_cast<size_t>(repeat), count);
    pos = comma + 1;
  }
  if (out.empty()) throw std::invalid_argument(bad);
  return out;
}

RankIds read_rank_ids(const GetEnv &getenv, int expected_size) {
  RankIds ids;
  const Source rank = first_of(getenv, {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", "PMI_RANK"});
  const Source size = first_of(getenv, {"OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS", "SLURM_NPROCS", "PMI_SIZE"});
  const Source local = first_of(getenv, {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"});
  Source local_size = first_of(getenv, {"OMPI_COMM_WORLD_LOCAL_SIZE"});
  if (local_size.name == nullptr) {
    const char *per_node = getenv("SLURM_STEP_TASKS_PER_NODE");
    if (per_node == nullptr) per_node = getenv("SLURM_TASKS_PER_NODE");
    const int node = to_int(getenv("SLURM_NODEID"));
    if (per_node != nullptr && node >= 0) {
      const std::vector<int> counts = parse_slurm_tasks_per_node(per_node);
      if (static_cast<size_t>(node) >= counts.size())
        throw std::runtime_error("SLURM_NODEID=" + std::to_string(node) + " is past the tasks-per-node list");
      local_size = {"SLURM_TASKS_PER_NODE", counts[static_cast<size_t>(node)]};
    }
  }
  if (local_size.name == nullptr) local_size = first_of(getenv, {"MPI_LOCALNRANKS"});

  if (rank.name == nullptr)
    throw std::runtime_error("no MPI rank variable is set (OMPI_COMM_WORLD_RANK, PMIX_RANK, SLURM_PROCID or "
                             "PMI_RANK); smprun-rank runs under smprun's mpirun");
  if (local.name == nullptr || local_size.name == nullptr)
    throw std::runtime_error("the launcher gives the rank (" + std::string(rank.name) +
                             ") but not the local rank and local size (OMPI_COMM_WORLD_LOCAL_RANK/"
                             "LOCAL_SIZE, SLURM_LOCALID/SLURM_TASKS_PER_NODE or MPI_LOCALRANKID/MPI_LOCALNRANKS)");
  ids.rank = rank.value;
  ids.size = size.name ? size.value : expected_size;
  ids.local_rank = local.value;
  ids.local_size = local_size.value;
  if (size.name && expected_size > 0 && size.value != expected_size)
    throw std::runtime_error(std::string(size.name) + "=" + std::to_string(size.value) + " but smprun planned " +
                             std::to_string(expected_size) + " ranks (was -np passed in --mpi-args too?)");
  if (ids.size < 1 || ids.rank >= ids.size)
    throw std::runtime_error("rank " + std::to_string(ids.rank) + " is outside a world of " +
                             std::to_string(ids.size));
  if (ids.local_size < 1 || ids.local_rank >= ids.local_size || ids.local_size > ids.size)
    throw std::runtime_error("local rank " + std::to_string(ids.local_rank) + " of " +
                             std::to_string(ids.local_size) + " does not fit a world of " + std::to_string(ids.size));
  return ids;
}

std::vector<std::string> entry_args(const EntryOptions &o) {
  std::vector<std::string> a = {"--np", std::to_string(o.np), "--pp", std::to_string(o.pp), "--tp",
                                std::to_string(o.tp), "--placement", o.placement, "--bind", topo::bind_name(o.bind)};
  if (!o.timeout.empty()) a.insert(a.end(), {"--timeout", o.timeout});
  if (o.check) a.push_back("--check");
  if (!o.timeline.empty()) a.insert(a.end(), {"--timeline", o.timeline});
  if (!o.master_addr.empty()) a.insert(a.end(), {"--master-addr", o.master_addr});
  if (!o.master_port.empty()) a.insert(a.end(), {"--master-port", o.master_port});
  a.push_back("--");
  a.insert(a.end(), o.program.begin(), o.program.end());
  return a;
}

EntryOptions parse_entry_args(const std::vector<std::string> &args) {
  EntryOptions o;
  size_t i = 0;
  auto value = [&](const std::string &flag) -> const std::string & {
    if (i + 1 >= args.size()) throw std::invalid_argument(flag + " needs a value");
    return args[++i];
  };
  auto number = [&](const std::string &flag) {
    const int v = to_int(value(flag).c_str());
    if (v < 1) throw std::invalid_argument(flag + " needs a positive integer");
    return v;
  };
  for (; i < args.size(); ++i) {
    const std::string &a = args[i];
    if (a == "--") {
      o.program.assign(args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    } else if (a == "--np") {
      o.np = number(a);
    } else if (a == "--pp") {
      o.pp = number(a);
    } else if (a == "--tp") {
      o.tp = number(a);
    } else if (a == "--placement") {
      o.placement = topo::Placement::parse(value(a)).letters();
    } else if (a == "--bind") {
      o.bind = topo::parse_bind(value(a));
    } else if (a == "--timeout") {
      o.timeout = value(a);
    } else if (a == "--check") {
      o.check = true;
    } else if (a == "--timeline") {
      o.timeline = value(a);
    } else if (a == "--master-addr") {
      o.master_addr = value(a);
    } else if (a == "--master-port") {
      const int port = to_int(value(a).c_str());
      if (port < 1 || port > 65535) throw std::invalid_argument("--master-port needs a port number 1..65535");
      o.master_port = args[i];
    } else {
      throw std::invalid_argument("unknown argument '" + a + "'");
    }
  }
  if (o.program.empty()) throw std::invalid_argument("no program after --");
  return o;
}

EnvList rank_env(const topo::Layout &layout, const RankIds &ids, const topo::RankBinding &binding,
                 const EntryOptions &o) {
  using topo::Group;
  const int r = ids.rank;
  auto s = [](int v) { return std::to_string(v); };
  EnvList env = {
      {"SMP_RANK", s(r)},
      {"SMP_SIZE", s(layout.size())},
      {"SMP_LOCAL_RANK", s(ids.local_rank)},
      {"SMP_LOCAL_SIZE", s(ids.local_size)},
      {"SMP_PP_RANK", s(layout.group_rank(Group::PP, r))},
      {"SMP_PP_SIZE", s(layout.pp_size())},
      {"SMP_TP_RANK", s(layout.group_rank(Group::TP, r))},
      {"SMP_TP_SIZE", s(layout.tp_size())},
      {"SMP_RDP_RANK", s(layout.group_rank(Group::RDP, r))},
      {"SMP_RDP_SIZE", s(layout.rdp_size())},
      {"SMP_DP_RANK", s(layout.group_rank(Group::DP, r))},
      {"SMP_DP_SIZE", s(layout.dp_size())},
      {"SMP_MP_RANK", s(layout.group_rank(Group::MP, r))},
      {"SMP_MP_SIZE", s(layout.mp_size())},
      {"SMP_PLACEMENT", layout.placement().letters()},
      {"SMP_DEVICE", s(binding.device)},
  };
  if (!o.timeout.empty()) env.emplace_back("SMP_TIMEOUT", o.timeout);
  if (o.check) env.emplace_back("SMP_CHECK", "1");
  if (!o.timeline.empty()) env.emplace_back("SMP_TIMELINE", o.timeline);
  env.emplace_back("RANK", s(r));
  env.emplace_back("WORLD_SIZE", s(layout.size()));
  env.emplace_back("LOCAL_RANK", s(ids.local_rank));
  env.emplace_back("LOCAL_WORLD_SIZE", s(ids.local_size));
  if (!o.master_addr.empty()) env.emplace_back("MASTER_ADDR", o.master_addr);
  if (!o.master_port.empty()) env.emplace_back("MASTER_PORT", o.master_port);
  return env;
}

}  // namespace smp::launcher
