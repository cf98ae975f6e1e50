#include "topo/layout.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace smp::topo {

const char *group_name(Group g) {
  switch (g) {
    case Group::World: return "WORLD";
    case Group::PP: return "PP_GROUP";
    case Group::TP: return "TP_GROUP";
    case Group::DP: return "DP_GROUP";
    case Group::RDP: return "RDP_GROUP";
    case Group::MP: return "MP_GROUP";
  }
  return "UNKNOWN_GROUP";
}

Placement Placement::parse(const std::string &text) {
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "cluster") return Placement("DPT");
  if (lower == "spread") return Placement("TPD");
  const std::string hint =
      "; use cluster, spread, or a permutation of the letters D, P, T such as DPT";
  std::string up;
  for (char c : text) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (up.size() != 3 || up.find_first_not_of("DPT") != std::string::npos)
    throw std::invalid_argument("unknown placement '" + text + "'" + hint);
  for (char axis : std::string("DPT")) {
    if (std::count(up.begin(), up.end(), axis) != 1)
      throw std::invalid_argument("placement '" + text + "' must name each of D, P, T exactly once" + hint);
  }
  return Placement(up);
}

Layout::Layout(int size, int pp, int tp, Placement placement)
    : size_(size), pp_(pp), tp_(tp), rdp_(0), placement_(std::move(placement)) {
  if (size < 1) throw std::invalid_argument("the number of ranks must be at least 1 (got " + std::to_string(size) + ")");
  if (pp < 1) throw std::invalid_argument("the pipeline-parallel degree must be at least 1 (got " + std::to_string(pp) + ")");
  if (tp < 1) throw std::invalid_argument("the tensor-parallel degree must be at least 1 (got " + std::to_string(tp) + ")");
  // In 64 bits: pp * tp of two ints overflows an int (SMP_PP_SIZE=2^31-1
  // with tp=2 wrapped to -2, or to 0 and a division by zero).
  const long long mp = static_cast<long long>(pp) * tp;
  if (size % mp != 0)
    throw std::invalid_argument(std::to_string(size) + " ranks cannot be split into pp=" + std::to_string(pp) +
                                " x tp=" + std::to_string(tp) + "; use a rank count that is a multiple of " +
                                std::to_string(mp));
  rdp_ = static_cast<int>(size / mp);
}

static int extent(const Layout &l, char axis) {
  return axis == 'D' ? l.rdp_size() : axis == 'P' ? l.pp_size() : l.tp_size();
}

// Stride of an axis: the product of the extents of the letters right of it.
int Layout::stride(char axis) const {
  const std::string &s = placement_.letters();
  int st = 1;
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] == axis) return st;
    st *= extent(*this, s[i]);
  }
  throw std::logic_error("placement without axis");
}

void Layout::check_rank(int rank) const {
  if (rank < 0 || rank >= size_)
    throw std::out_of_range("rank " + std::to_string(rank) + " is outside 0.." + std::to_string(size_ - 1));
}

Coord Layout::coord(int rank) const {
  check_rank(rank);
  Coord c;
  c.rdp = rank / stride('D') % rdp_;
  c.pp = rank / stride('P') % pp_;
  c.tp = rank / stride('T') % tp_;
  return c;
}

int Layout::rank_of(const Coord &c) const {
  if (c.pp < 0 || c.pp >= pp_ || c.tp < 0 || c.tp >= tp_ || c.rdp < 0 || c.rdp >= rdp_)
    throw std::out_of_range("coordinate outside the layout");
  return c.rdp * stride('D') + c.pp * stride('P') + c.tp * stride('T');
}

int Layout::group_size(Group g) const {
  switch (g) {
    case Group::World: return size_;
    case Group::PP: return pp_;
    case Group::TP: return tp_;
    case Group::DP: return dp_size();
    case Group::RDP: return rdp_;
    case Group::MP: return mp_size();
  }
  throw std::invalid_argument("unknown group");
}

// Which axes vary inside a group; the others are held fixed.
static void varying(Group g, bool &pp, bool &tp, bool &rdp) {
  pp = g == Group::World || g == Group::PP || g == Group::MP;
  tp = g == Group::World || g == Group::TP || g == Group::DP || g == Group::MP;
  rdp = g == Group::World || g == Group::RDP || g == Group::DP;
}

std::vector<int> Layout::group_members(Group g, int rank) const {
  const Coord me = coord(rank);
  bool vp, vt, vd;
  varying(g, vp, vt, vd);
  std::vector<int> out;
  out.reserve(static_cast<size_t>(group_size(g)));
  for (int p = vp ? 0 : me.pp; p < (vp ? pp_ : me.pp + 1); ++p)
    for (int t = vt ? 0 : me.tp; t < (vt ? tp_ : me.tp + 1); ++t)
      for (int d = vd ? 0 : me.rdp; d < (vd ? rdp_ : me.rdp + 1); ++d)
        out.push_back(rank_of({p, t, d}));
  std::sort(out.begin(), out.end());
  return out;
}

int Layout::group_rank(Group g, int rank) const {
  const std::vector<int> m = group_members(g, rank);
  return static_cast<int>(std::lower_bound(m.begin(), m.end(), rank) - m.begin());
}

int Layout::group_color(Group g, int rank) const {
  const Coord c = coord(rank);
  bool vp, vt, vd;
  varying(g, vp, vt, vd);
  // Mixed-radix number over the fixed axes.
  int color = 0;
  if (!vp) color = color * pp_ + c.pp;
  if (!vt) color = color * tp_ + c.tp;
  if (!vd) color = color * rdp_ + c.rdp;
  return color;
}

}  // namespace smp::topo
