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

bool is_this_host(const std::string &name, const std::string &hostname) {
  return name == "localhost" || name == "127.0.0.1" || name == hostname ||
         short_name(name) == short_name(hostname);
}

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
        throw UsageError("hostfile " + path + " line " + std::to_string(lineno) + ": '" + word +
                         "' is not slots=N or max_slots=N");
      if (key == "slots") h.slots = v;
    }
    out.push_back(h);
  }
  if (out.empty()) throw UsageError("hostfile '" + path + "' names no host; write one host per line");
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

  // Where Open MPI puts each rank: every host's slots in turn; ranks beyond
  // all slots (oversubscription) spread evenly, first hosts first.
  std::vector<std::string> host_of(static_cast<size_t>(np), info.hostname);
  bool oversubscribe = np > cores;
  if (!hosts.empty()) {
    std::vector<int> count;
    long total = 0;
    for (const HostSlots &h : hosts) {
      count.push_back(h.slots > 0 ? h.slots : cores);  // no slots=: Open MPI counts the host's cores
      total += count.back();
    }
    oversubscribe = np > total;
    if (oversubscribe) {
      const long extra = np - total, n = static_cast<long>(hosts.size());
      for (size_t i = 0; i < count.size(); ++i)
        count[i] += static_cast<int>(extra / n + (static_cast<long>(i) < extra % n ? 1 : 0));
    }
    int r = 0;
    for (size_t i = 0; i < hosts.size() && r < np; ++i) {
      int local_here = 0;
      for (int k = 0; k < count[i] && r < np; ++k, ++r, ++local_here) host_of[static_cast<size_t>(r)] = hosts[i].name;
      if (is_this_host(hosts[i].name, info.hostname) && local_here > cores) oversubscribe = true;
      if (!is_this_host(hosts[i].name, info.hostname) && local_here > 0) plan.other_hosts = true;
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
    try {
      row.binding = topo::plan_binding(info.machine, info.visible, plan.bind, row.local_rank, row.local_size);
    } catch (const std::invalid_argument &e) {
      throw UsageError(e.what());
    }
  }

  std::vector<std::string> &a = plan.argv;
  a.push_back(info.mpirun);
  if (info.is_root) a.push_back("--allow-run-as-root");
  if (oversubscribe) a.push_back("--oversubscribe");
  // smprun-rank binds every rank itself; mpirun's binding would fight it.
  a.insert(a.end(), {"--bind-to", "none", "-np", std::to_string(np)});
  if (!o.hosts.empty()) a.insert(a.end(), {"-H", o.hosts});
  if (!o.hostfile.empty()) a.insert(a.end(), {"--hostfile", o.hostfile});
  if (o.tag_output) a.push_back("--tag-output");
  for (const std::string &x : o.exports) a.insert(a.end(), {"-x", x});
  const std::vector<std::string> extra = split_args(o.mpi_args);
  a.insert(a.end(), extra.begin(), extra.end());
  a.push_back(info.rank_entry);
  EntryOptions e;
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
    const std::string cpus = r.binding.cpus.empty() ? "-" : topo::format_cpus(r.binding.cpus);
    return {std::to_string(r.rank), r.host, std::to_string(r.local_rank) + "/" + std::to_string(r.local_size),
            std::to_string(r.coord.pp), std::to_string(r.coord.tp), std::to_string(r.coord.rdp),
            std::to_string(r.dp_rank), std::to_string(r.mp_rank), std::to_string(r.binding.device), cpus};
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
    out << "(local rank, device and cpus of hosts other than this one assume they have this host's hardware)\n";
  return out.str();
}

}  // namespace smp::launcher
