#include "comm/groups.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

namespace smp::comm {

namespace {

std::mutex g_mu;
std::map<int, std::vector<int>> g_members;  // created groups alive in this process
std::set<std::string> g_names;              // interned labels, never freed

const char *intern(const std::string &s) { return g_names.insert(s).first->c_str(); }

}  // namespace

std::string user_group_name(topo::Group g, const std::vector<int> &members) {
  std::string s = "group " + std::to_string(static_cast<int>(g)) + " (world ranks ";
  const size_t shown = members.size() <= 8 ? members.size() : 6;
  for (size_t i = 0; i < shown; ++i) s += (i ? "," : "") + std::to_string(members[i]);
  if (shown < members.size())
    s += ",...," + std::to_string(members.back()) + "; " + std::to_string(members.size()) + " ranks";
  return s + ")";
}

void register_user_group(topo::Group g, const std::vector<int> &members) {
  const std::string name = user_group_name(g, members);
  std::lock_guard<std::mutex> lock(g_mu);
  g_members[static_cast<int>(g)] = members;
  intern(name);
}

void unregister_user_group(topo::Group g) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_members.erase(static_cast<int>(g));
}

const char *group_label(topo::Group g) {
  if (is_layout_group(g)) return topo::group_name(g);
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_members.find(static_cast<int>(g));
  if (it == g_members.end()) return intern("group " + std::to_string(static_cast<int>(g)));
  return intern(user_group_name(g, it->second));
}

std::vector<int> group_members_of(const topo::Layout &layout, topo::Group g, int world_rank) {
  if (is_layout_group(g)) return layout.group_members(g, world_rank);
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_members.find(static_cast<int>(g));
  if (it == g_members.end() ||
      std::find(it->second.begin(), it->second.end(), world_rank) == it->second.end())
    return {};
  return it->second;
}

}  // namespace smp::comm
