#include "hang_report.h"

#include <map>
#include <set>
#include <sstream>
#include <vector>

namespace smp::launcher {

namespace {

std::vector<std::string> split_tabs(const std::string &line) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    const size_t tab = line.find('\t', pos);
    out.push_back(line.substr(pos, tab == std::string::npos ? std::string::npos : tab - pos));
    if (tab == std::string::npos) return out;
    pos = tab + 1;
  }
}

bool parse_rank(const std::string &s, int *rank) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  *rank = std::stoi(s);
  return true;
}

std::string rank_list(const std::set<int> &ranks) {
  std::string out = ranks.size() == 1 ? "rank " : "ranks ";
  bool first = true;
  for (int r : ranks) {
    out += (first ? "" : ", ") + std::to_string(r);
    first = false;
  }
  return out;
}

}  // namespace

std::string hang_summary(const std::string &report) {
  std::map<int, std::string> waits_in;        // waiting rank -> what it waits in (its first line)
  std::map<int, std::string> absent_state;    // absent rank -> its state (first seen)
  std::map<int, std::set<int>> waited_by;     // absent rank -> ranks that waited for it
  std::istringstream in(report);
  std::string line;
  while (std::getline(in, line)) {
    const std::vector<std::string> f = split_tabs(line);
    int rank = -1;
    if (f.size() < 3 || f[0] != "smp-hang" || !parse_rank(f[1], &rank) || f.size() % 2 == 0) continue;
    waits_in.emplace(rank, f[2]);
    for (size_t i = 3; i + 1 < f.size(); i += 2) {
      int a = -1;
      if (!parse_rank(f[i], &a)) continue;
      absent_state.emplace(a, f[i + 1]);
      waited_by[a].insert(rank);
    }
  }
  if (waits_in.empty()) return "";
  std::set<int> stuck, waiters;
  for (const auto &[a, by] : waited_by) {
    if (waits_in.count(a)) continue;  // it waits too: its own line says in what
    stuck.insert(a);
    waiters.insert(by.begin(), by.end());
  }
  std::string out = "smprun: hang: ";
  if (stuck.empty()) {
    // Every absent rank waits itself: a cycle, or operations that do not match.
    bool first = true;
    for (const auto &[r, what] : waits_in) {
      out += (first ? "rank " : "; rank ") + std::to_string(r) + " waited in " + what;
      first = false;
    }
    return out + " (each past SMP_TIMEOUT, none stuck outside them)";
  }
  bool first = true;
  for (int r : stuck) {
    out += (first ? "" : ", ") + std::to_string(r) + " (" + absent_state[r] + ")";
    first = false;
  }
  out = (stuck.size() == 1 ? "smprun: hang: rank " : "smprun: hang: ranks ") + out.substr(14) + " never arrived; " +
        rank_list(waiters) + " waited for " + (stuck.size() == 1 ? "it" : "them") + " past SMP_TIMEOUT (rank " +
        std::to_string(*waiters.begin()) + " in " + waits_in[*waiters.begin()] + ")";
  return out;
}

}  // namespace smp::launcher
