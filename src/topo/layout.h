// Rank layout of a hybrid-parallel job: world rank <-> (pp, tp, rdp)
// coordinates and the six process groups, as SageMaker model parallelism
// defines them. Pure math: no MPI, no hardware.
#pragma once

#include <array>
#include <string>
#include <vector>

namespace smp::topo {

// Same values as smp_group_t in include/smp/smp.h.
enum class Group { World = 0, PP = 1, TP = 2, DP = 3, RDP = 4, MP = 5 };
inline constexpr std::array<Group, 6> kAllGroups = {
    Group::World, Group::PP, Group::TP, Group::DP, Group::RDP, Group::MP};
const char *group_name(Group g);  // "WORLD", "PP_GROUP", ...

// Order of the three axes over consecutive world ranks: letters D (rdp),
// P (pp), T (tp); the right-most letter varies fastest.
class Placement {
 public:
  Placement() = default;  // DPT, the "cluster" default
  // Accepts "cluster" (DPT), "spread" (TPD) or a permutation of D, P, T
  // (either case). Throws std::invalid_argument with a message that says
  // what is wrong and what is accepted.
  static Placement parse(const std::string &text);
  const std::string &letters() const { return letters_; }

 private:
  explicit Placement(std::string letters) : letters_(std::move(letters)) {}
  std::string letters_ = "DPT";
};

struct Coord {
  int pp = 0, tp = 0, rdp = 0;
  bool operator==(const Coord &o) const {
    return pp == o.pp && tp == o.tp && rdp == o.rdp;
  }
};

class Layout {
 public:
  // Throws std::invalid_argument when a degree is < 1 or size is not a
  // multiple of pp*tp (the message names the numbers and the fix).
  Layout(int size, int pp, int tp, Placement placement = {});

  int size() const { return size_; }
  int pp_size() const { return pp_; }
  int tp_size() const { return tp_; }
  int rdp_size() const { return rdp_; }
  int dp_size() const { return tp_ * rdp_; }
  int mp_size() const { return pp_ * tp_; }
  const Placement &placement() const { return placement_; }

  Coord coord(int rank) const;
  int rank_of(const Coord &c) const;

  int group_size(Group g) const;
  // Members of `rank`'s group g, sorted by world rank; a rank's rank in
  // the group is its position in this list.
  std::vector<int> group_members(Group g, int rank) const;
  int group_rank(Group g, int rank) const;
  // Which instance of g `rank` belongs to, in 0..size/group_size-1: ranks
  // share an instance iff they share the coordinates g holds fixed. Usable
  // as an MPI_Comm_split colour.
  int group_color(Group g, int rank) const;

 private:
  int stride(char axis) const;
  void check_rank(int rank) const;

  int size_, pp_, tp_, rdp_;
  Placement placement_;
};

}  // namespace smp::topo
