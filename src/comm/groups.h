// Groups created at run time (smp_group_create), as the parts of comm that
// know a group by its topo::Group value alone see them: the watchdog (its
// line, its queries to the members) and SMP_CHECK's world-level channel.
//
// A created group's value is its C handle, kFirstUserGroup + an id its
// members agreed on when they created it (the largest of their counters of
// created groups), so the same group has the same value, and the same name,
// on every member, and no two groups of one rank share a value. The layout
// (topo) knows nothing of these groups: their members are registered here
// by Context while the group lives.
#pragma once

#include <string>
#include <vector>

#include "topo/layout.h"

namespace smp::comm {

inline constexpr int kFirstUserGroup = 64;  // SMP_GROUP_USER_BASE
inline bool is_layout_group(topo::Group g) {
  const int v = static_cast<int>(g);
  return v >= 0 && v < static_cast<int>(topo::kAllGroups.size());
}
inline bool is_user_group(topo::Group g) { return static_cast<int>(g) >= kFirstUserGroup; }

// "group 64 (world ranks 0,2,3)"; beyond 8 members "group 64 (world ranks
// 0,1,2,3,4,5,...,15; 16 ranks)". Pure.
std::string user_group_name(topo::Group g, const std::vector<int> &members);

// While a created group lives: its members (world ranks, in group order).
void register_user_group(topo::Group g, const std::vector<int> &members);
void unregister_user_group(topo::Group g);

// A group in words, for messages and timeline events: a layout group's
// name, a created group's user_group_name, "group N" for any other value.
// The text lives as long as the process (interned), so a pointer to it may
// outlive the group.
const char *group_label(topo::Group g);

// Members (world ranks, in group order) of `world_rank`'s group g: the
// layout's, or a created group's if it is registered here and holds
// world_rank; empty otherwise.
std::vector<int> group_members_of(const topo::Layout &layout, topo::Group g, int world_rank);

}  // namespace smp::comm
