#include "plan.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "rank_env.h"

namespace smp::launcher {

namespace {

int positive(const std::string &text) {
  if (text.empty() || text.size() > 7 || text.find_first_not_of("0123456789") != std::string::npos) return -1;
  const int v = std::stoi(text);
  return v > 0 ? v : -1;
}

std::string short_name(const std::string &host) { return host.substr(0, host.find('.')); }

}  // namespace

int split_tp_groups(const topo::Layout &layout, const std::vector<std::string> &host_of) {
  // A TP group is the ranks of one (pp, rdp).
  std::map<std::pair<int, int>, std::string> first;
  std::map<std::pair<int, int>, bool> split;
  for (size_t r = 0; r < host_of.size(); ++r) {
    const topo::Coord c = layout.coord(static_cast<int>(r));
    const auto it = first.emplace(std::make_pair(c.pp, c.rdp), host_of[r]).first;
    if (it->second != host_of[r]) split[{c.pp, c.rdp}] = true;
  }
  return static_cast<int>(split.size());
}

bool is_this_host(const std::string &name, const std::string &hostname) {
  return name == "localhost" || name == "127.0.0.1" || name == hostname ||
         short_name(name) == short_name(hostname);
}

namespace {

int core_count(const topo::Machine &m) {
  if (!m.cores.empty()) return static_cast<int>(m.cores.size());
  return std::max(1, static_cast<int>(m.cpus.size()));
}

}  // namespace

std::vector<HostSlots> parse_hosts(const std::string &text) {
  std::vector<HostSlots> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t colon = item.rfind(':');
    HostSlots h{item.substr(0, colon), 1};
    if (colon != std::string::npos) h.slots = positive(item.substr(colon + 1));
    if (h.name.empty() || h.slots < 1)
      throw UsageError("bad host '" + item + "' in -H '" + text + "'; write hosts as h1:slots,h2:slots");
    out.push_back(h);
  }
  if (out.empty()) throw UsageError("-H names no host; write hosts as h1:slots,h2:slots");
  return out;
}

std::vector<HostSlots> read_hostfile(const std::string &path) {
  std::ifstream file(path, std::ios::binary);
  if (!file)
    throw UsageError("cannot read hostfile '" + path + "': " + std::strerror(errno) +
                     "; give a readable Open MPI hostfile");
  // Read at most kMaxHostfileBytes (+1 to notice more): a hostfile that is
  // really /dev/zero or an endless pipe is refused, not read forever.
  std::string text(kMaxHostfileBytes + 1, '\0');
  file.read(&text[0], static_cast<std::streamsize>(text.size()));
  if (file.bad()) throw UsageError("cannot read hostfile '" + path + "'; give a readable Open MPI hostfile");
  text.resize(static_cast<size_t>(file.gcount()));
  if (text.size() > kMaxHostfileBytes)
    throw UsageError("hostfile '" + path + "' is larger than " + std::to_string(kMaxHostfileBytes) +
                     " bytes; give an Open MPI hostfile, one host per line");
  std::istringstream in(text);
  std::vector<HostSlots> out;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    line = line.substr(0, line.find('#'));
    std::stringstream words(line);
    std::string name, word;
    if (!(words >> name)) continue;
    HostSlots h{name, 0};
    while (words >> word) {
      const size_t eq = word.find('=');
      const std::string key = word.substr(0, eq);
      const int v = eq == std::string::npos ? -1 : positive(word.substr(eq + 1));
      if (v < 1 || (key != "slots" && key != "max_slots" && key != "max-slots"))
        throw UsageError("hostfile " + path + " line " + std::to_string(lineno) + " (host " + name + "): '" +
                         word + "' is not slots=N or max_slots=N");
      if (key == "slots") h.slots = v;
    }
    out.push_back(h);
  }
  if (out.empty()) throw UsageError("hostfile '" + path + "' names no host; write one host per line");
  return out;
}

std::vector<std::string> expand_nodelist(const std::string &nodelist) {
  std::vector<std::string> out;
  const std::string bad = "bad Slurm node list '" + nodelist + "'";
  size_t pos = 0;
  while (pos < nodelist.size()) {
    // One item: a prefix, then optionally [ranges] and a suffix; items are
    // separated by commas outside brackets.
    size_t end = pos;
    int depth = 0;
    while (end < nodelist.size() && (depth > 0 || nodelist[end] != ',')) {
      if (nodelist[end] == '[') ++depth;
      if (nodelist[end] == ']') --depth;
      if (depth < 0 || depth > 1) throw UsageError(bad);
      ++end;
    }
    const std::string item = nodelist.substr(pos, end - pos);
    pos = end + 1;
    const size_t open = item.find('[');
    if (item.empty() || depth != 0) throw UsageError(bad);
    if (open == std::string::npos) {
      out.push_back(item);
      continue;
    }
    const size_t close = item.find(']', open);
    const std::string prefix = item.substr(0, open), suffix = item.substr(close + 1);
    std::stringstream ranges(item.substr(open + 1, close - open - 1));
    std::string range;
    while (std::getline(ranges, range, ',')) {
      const size_t dash = range.find('-');
      const std::string lo = range.substr(0, dash), hi = dash == std::string::npos ? lo : range.substr(dash + 1);
      if (lo.empty() || hi.empty() || lo.find_first_not_of("0123456789") != std::string::npos ||
          hi.find_first_not_of("0123456789") != std::string::npos || lo.size() > 9 || hi.size() > 9)
        throw UsageError(bad);
      const long a = std::stol(lo), b = std::stol(hi);
      if (b < a || b - a > kMaxRanks) throw UsageError(bad);
      for (long v = a; v <= b; ++v) {
        std::string num = std::to_string(v);
        if (num.size() < lo.size()) num.insert(0, lo.size() - num.size(), '0');  // n[01-03]
        out.push_back(prefix + num + suffix);
      }
    }
  }
  if (out.empty()) throw UsageError(bad);
  return out;
}

std::vector<HostSlots> slurm_hosts(const std::string &nodelist, const std::string &tasks_per_node) {
  const std::vector<std::string> names = expand_nodelist(nodelist);
  std::vector<int> slots;
  try {
    slots = parse_slurm_tasks_per_node(tasks_per_node);
  } catch (const std::invalid_argument &e) {
    throw UsageError(e.what());
  }
  if (slots.size() != names.size())
    throw UsageError("Slurm's node list '" + nodelist + "' has " + std::to_string(names.size()) +
                     " nodes but its tasks per node '" + tasks_per_node + "' " + std::to_string(slots.size()));
  std::vector<HostSlots> out;
  for (size_t i = 0; i < names.size(); ++i) out.push_back({names[i], slots[i]});
  return out;
}

std::vector<std::string> split_args(const std::string &text) {
  std::vector<std::string> out;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote == '\'') {
      if (c == '\'') quote = 0; else word += c;
    } else if (quote == '"') {
      if (c == '"') quote = 0;
      else if (c == '\\' && i + 1 < text.size() && std::strchr("\"\\$`", text[i + 1])) word += text[++i];
      else word += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\') {
      if (i + 1 < text.size()) word += text[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) out.push_back(word);
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote) throw UsageError(std::string("--mpi-args has an unterminated ") + quote + " quote");
  if (in_word) out.push_back(word);
  return out;
}

std::string shell_join(const std::vector<std::string> &argv) {
  std::string out;
  for (const std::string &a : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                         "0123456789_@%+=:,./-") == std::string::npos;
    if (plain) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

int group_rank_of(const topo::Layout &l, topo::Group g, const topo::Coord &c) {
  // A rank's place in its group, sorted by world rank, is the mixed-radix
  // number of the coordinates the group varies over, most significant the
  // one with the largest stride, i.e. the left-most in the placement (O(1);
  // Layout::group_rank lists the group's members, O(group size)).
  const bool vp = g == topo::Group::World || g == topo::Group::PP || g == topo::Group::MP;
  const bool vt = g == topo::Group::World || g == topo::Group::TP || g == topo::Group::DP || g == topo::Group::MP;
  const bool vd = g == topo::Group::World || g == topo::Group::RDP || g == topo::Group::DP;
  int r = 0;
  for (char axis : l.placement().letters()) {
    if (axis == 'P' && vp) r = r * l.pp_size() + c.pp;
    if (axis == 'T' && vt) r = r * l.tp_size() + c.tp;
    if (axis == 'D' && vd) r = r * l.rdp_size() + c.rdp;
  }
  return r;
}

Plan make_plan(const Options &o, const std::vector<HostSlots> &hosts, const HostInfo &info) {
  Plan plan;
  topo::Placement placement;
  try {
    placement = topo::Placement::parse(o.placement);
    plan.bind = topo::parse_bind(o.bind);
    const int np = o.np > 0 ? o.np : std::max(1, static_cast<int>(info.visible.size()));
    // Checked here, in 64 bits, before Layout multiplies them in int: huge
    // degrees would overflow there (a division by zero, a negative size).
    if (np > kMaxRanks)
      throw UsageError("-np " + std::to_string(np) + " is more than the " + std::to_string(kMaxRanks) +
                       " ranks smprun launches");
    if (o.pp < 1 || o.tp < 1 || static_cast<int64_t>(o.pp) * o.tp > np)
      throw UsageError(std::to_string(np) + " ranks cannot be split into pp=" + std::to_string(o.pp) + " x tp=" +
                       std::to_string(o.tp) + "; pp x tp must be at least 1 and divide the rank count");
    plan.layout = topo::Layout(np, o.pp, o.tp, placement);
  } catch (const std::invalid_argument &e) {
    throw UsageError(e.what());
  }
  const int np = plan.layout.size();
  const int cores = core_count(info.machine);
  const bool srun = o.launcher == "srun";

  // Where the launcher puts each rank: every host's slots in turn (Open
  // MPI's --map-by slot, Slurm's block distribution); ranks beyond all slots
  // (--oversubscribe) spread evenly, first hosts first. (Or round-robin,
  // below, where that keeps TP groups inside hosts.)
  std::vector<std::string> host_of(static_cast<size_t>(np), info.hostname);
  bool oversubscribe = np > cores;
  if (!hosts.empty()) {
    std::vector<int> count;
    long total = 0;
    std::string listed;
    for (const HostSlots &h : hosts) {
      int slots = h.slots;
      if (slots < 1) {  // no slots=: Open MPI counts the host's cores
        const auto it = info.host_cores.find(h.name);
        slots = it != info.host_cores.end() ? it->second : cores;
      }
      count.push_back(slots);
      total += slots;
      if (listed.size() < 200) listed += (listed.empty() ? "" : ",") + h.name + ":" + std::to_string(slots);
    }
    if (np > total && !o.oversubscribe)
      throw UsageError(std::to_string(np) + " ranks but the hosts have " + std::to_string(total) + " slots (" +
                       listed + (listed.size() >= 200 ? ",..." : "") +
                       "); give fewer ranks, more slots, or --oversubscribe");
    oversubscribe = np > total;
    if (oversubscribe) {
      const long extra = np - total, n = static_cast<long>(hosts.size());
      for (size_t i = 0; i < count.size(); ++i)
        count[i] += static_cast<int>(extra / n + (static_cast<long>(i) < extra % n ? 1 : 0));
    }
    int r = 0;
    for (size_t i = 0; i < hosts.size() && r < np; ++i)
      for (int k = 0; k < count[i] && r < np; ++k, ++r) host_of[static_cast<size_t>(r)] = hosts[i].name;
    // A placement whose TP groups are not consecutive ranks (spread: TP
    // varies slowest) splits them across hosts filled slot by slot. Dealt
    // round-robin over the hosts instead (mpirun --map-by node), ranks a
    // multiple of the host count apart share a host: where that keeps more
    // TP groups together, smprun maps so. Only with equal slots and as
    // many ranks on every host, where Open MPI's by-node mapping is exactly
    // many ranks on every host, where Open MPI's by-node mapping (and
    // Slurm's cyclic distribution) is exactly rank r on host r mod n.
    const size_t n = hosts.size();
    const bool even = n > 1 && !oversubscribe && np % static_cast<int>(n) == 0 &&
                      std::all_of(count.begin(), count.end(), [&](int c) { return c == count[0]; }) &&
                      np / static_cast<int>(n) <= count[0];
    if (even && split_tp_groups(plan.layout, host_of) > 0) {
      std::vector<std::string> by_node(static_cast<size_t>(np));
      for (int q = 0; q < np; ++q) by_node[static_cast<size_t>(q)] = hosts[static_cast<size_t>(q) % n].name;
      if (split_tp_groups(plan.layout, by_node) < split_tp_groups(plan.layout, host_of)) {
        host_of = std::move(by_node);
        plan.map_by_node = true;
      }
    }
    std::map<std::string, int> per_host;
    for (const std::string &h : host_of) ++per_host[h];
    for (const HostSlots &h : hosts) {
      const int here = per_host.count(h.name) ? per_host[h.name] : 0;
      if (is_this_host(h.name, info.hostname) && here > cores) oversubscribe = true;
      if (!is_this_host(h.name, info.hostname) && here > 0) {
        plan.other_hosts = true;
        if (std::find(plan.remote_hosts.begin(), plan.remote_hosts.end(), h.name) == plan.remote_hosts.end())
          plan.remote_hosts.push_back(h.name);
      }
    }
  }

  // Linear in ranks: hosts are looked up in a map, group ranks computed.
  std::map<std::string, int> seen;  // ranks so far per host
  plan.rows.reserve(static_cast<size_t>(np));
  for (int r = 0; r < np; ++r) {
    RankRow row;
    row.rank = r;
    row.host = host_of[static_cast<size_t>(r)];
    row.local_rank = seen[row.host]++;
    row.coord = plan.layout.coord(r);
    row.dp_rank = group_rank_of(plan.layout, topo::Group::DP, row.coord);
    row.mp_rank = group_rank_of(plan.layout, topo::Group::MP, row.coord);
    plan.rows.push_back(std::move(row));
  }
  for (RankRow &row : plan.rows) {
    row.local_size = seen[row.host];
    if (!is_this_host(row.host, info.hostname)) {
      row.binding = topo::RankBinding{};  // chosen on that host, from its own hardware
      row.binding.device = -2;
      continue;
    }
    try {
      row.binding = topo::plan_binding(info.machine, info.visible, plan.bind, row.local_rank, row.local_size);
    } catch (const std::invalid_argument &e) {
      throw UsageError(e.what());
    }
  }
  plan.split_tp_groups = hosts.empty() ? 0 : split_tp_groups(plan.layout, host_of);

  // torch's rendezvous (torchrun's MASTER_ADDR / MASTER_PORT): rank 0's
  // host, and a port free there, unless the user set them.
  EntryOptions e;
  const std::string &host0 = plan.rows[0].host;
  const bool local0 = hosts.empty() || is_this_host(host0, info.hostname);
  if (!info.master_addr.empty()) e.master_addr = info.master_addr;
  else if (!plan.other_hosts) e.master_addr = "127.0.0.1";
  else e.master_addr = local0 ? info.hostname : host0;
  if (!info.master_port.empty()) {
    e.master_port = info.master_port;
  } else {
    // A port free on rank 0's host, as its check found; where no check ran
    // (a dry run, Slurm's nodes) one free here.
    int port = info.local_port;
    const auto it = info.host_port.find(host0);
    if (!local0 && it != info.host_port.end()) port = it->second;
    e.master_port = std::to_string(port > 0 ? port : 29500);  // 29500: torchrun's default
  }

  std::vector<std::string> &a = plan.argv;
  const std::vector<std::string> extra = split_args(o.mpi_args);
  if (srun) {
    // srun starts the ranks on the allocation's nodes, with this
    // environment; it binds nothing (smprun-rank does).
    // --mpi=pmix: Open MPI's ranks find each other through Slurm's PMIx.
    a = {info.mpirun, "--ntasks", std::to_string(np), "--cpu-bind=none", "--kill-on-bad-exit=1", "--mpi=pmix"};
    if (o.oversubscribe || oversubscribe) a.push_back("--overcommit");
    if (o.tag_output) a.push_back("--label");
    if (plan.map_by_node) a.push_back("--distribution=cyclic");
    a.insert(a.end(), extra.begin(), extra.end());
    for (const std::string &x : o.exports) {
      const size_t eq = x.find('=');
      if (eq != std::string::npos) plan.setenv.emplace_back(x.substr(0, eq), x.substr(eq + 1));
    }
    if (!o.iface.empty())
      for (const char *name : {"NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "OMPI_MCA_btl_tcp_if_include",
                               "OMPI_MCA_oob_tcp_if_include"})
        plan.setenv.emplace_back(name, o.iface);
  } else {
    a.push_back(info.mpirun);
    if (info.is_root) a.push_back("--allow-run-as-root");
    if (oversubscribe || o.oversubscribe) a.push_back("--oversubscribe");
    // smprun-rank binds every rank itself; mpirun's binding would fight it.
    a.insert(a.end(), {"--bind-to", "none", "-np", std::to_string(np)});
    if (!o.hosts.empty()) a.insert(a.end(), {"-H", o.hosts});
    if (!o.hostfile.empty()) a.insert(a.end(), {"--hostfile", o.hostfile});
    if (plan.map_by_node) a.insert(a.end(), {"--map-by", "node"});
    if (!info.rsh_agent.empty() && plan.other_hosts) a.insert(a.end(), {"--mca", "plm_rsh_agent", info.rsh_agent});
    if (o.tag_output) a.push_back("--tag-output");
    if (!o.iface.empty()) {
      a.insert(a.end(), {"--mca", "btl_tcp_if_include", o.iface, "--mca", "oob_tcp_if_include", o.iface, "-x",
                         "NCCL_SOCKET_IFNAME=" + o.iface, "-x", "GLOO_SOCKET_IFNAME=" + o.iface});
    }
    // Ranks on other hosts get only what -x names (mpirun's rule): the
    // paths and smp's settings go with them.
    if (!hosts.empty()) {
      for (const std::string &name : info.forward) {
        const bool given = std::any_of(o.exports.begin(), o.exports.end(), [&](const std::string &x) {
          return x.substr(0, x.find('=')) == name;
        });
        if (!given) a.insert(a.end(), {"-x", name});
      }
    }
    for (const std::string &x : o.exports) a.insert(a.end(), {"-x", x});
    a.insert(a.end(), extra.begin(), extra.end());
  }
  a.push_back(info.rank_entry);
  e.np = np;
  e.pp = o.pp;
  e.tp = o.tp;
  e.placement = placement.letters();
  e.bind = plan.bind;
  e.timeout = o.timeout;
  e.check = o.check;
  e.timeline = o.timeline;
  e.program = o.program;
  const std::vector<std::string> entry = entry_args(e);
  a.insert(a.end(), entry.begin(), entry.end());
  return plan;
}

std::string format_table(const Plan &plan) {
  const topo::Layout &l = plan.layout;
  std::ostringstream out;
  out << "smprun: " << l.size() << " ranks = pp " << l.pp_size() << " x tp " << l.tp_size() << " x rdp "
      << l.rdp_size() << ", placement " << l.placement().letters() << ", bind " << topo::bind_name(plan.bind);
  if (!plan.rows.empty() && plan.bind == topo::Bind::Auto)
    out << " (" << topo::bind_name(plan.rows[0].binding.bind) << ")";
  out << "\n";
  const std::vector<std::string> head = {"rank", "host", "local", "pp", "tp", "rdp", "dp", "mp", "device", "cpus"};
  // Two passes over the rows (widths, then lines) rather than holding every
  // cell: a million-rank table stays linear and small in memory.
  const auto cells = [](const RankRow &r) -> std::vector<std::string> {
    const bool there = r.binding.device == -2;  // bound on its own host
    const std::string cpus = there ? "*" : r.binding.cpus.empty() ? "-" : topo::format_cpus(r.binding.cpus);
    return {std::to_string(r.rank), r.host, std::to_string(r.local_rank) + "/" + std::to_string(r.local_size),
            std::to_string(r.coord.pp), std::to_string(r.coord.tp), std::to_string(r.coord.rdp),
            std::to_string(r.dp_rank), std::to_string(r.mp_rank),
            there ? std::string("*") : std::to_string(r.binding.device), cpus};
  };
  std::vector<size_t> width;
  for (const std::string &h : head) width.push_back(h.size());
  for (const RankRow &r : plan.rows) {
    const std::vector<std::string> row = cells(r);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string s;
  auto line = [&](const std::vector<std::string> &row) {
    s.clear();
    for (size_t i = 0; i < row.size(); ++i) {
      const bool left = i == 1 || i + 1 == row.size();  // host and cpus read best left-aligned
      if (i) s += "  ";
      if (!left) s.append(width[i] - row[i].size(), ' ');
      s += row[i];
      if (left && i + 1 != row.size()) s.append(width[i] - row[i].size(), ' ');
    }
    s += '\n';
    out << s;
  };
  line(head);
  for (const RankRow &r : plan.rows) line(cells(r));
  if (plan.other_hosts)
    out << "(*: every rank on another host chooses its device and cpus there, from that host's own hardware)\n";
  if (plan.split_tp_groups > 0)
    out << "(" << plan.split_tp_groups << " TP group(s) span hosts: placement cluster with slots that are "
        << "multiples of tp, or the same slots and as many ranks on every host, keeps them inside hosts)\n";
  return out.str();
}

}  // namespace smp::launcher
