// The layout against DESIGN.md's definitions, checked independently: the
// reference here enumerates coordinates and builds groups by comparing
// coordinates, rather than using the strides the library uses.
#include "topo/layout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

using smp::topo::Coord;
using smp::topo::Group;
using smp::topo::Layout;
using smp::topo::Placement;

namespace {

const char *kPlacements[] = {"DPT", "DTP", "PDT", "PTD", "TDP", "TPD", "cluster", "spread"};

// Reference rank of a coordinate: digits in placement order, the last
// letter least significant.
int ref_rank(const std::string &letters, const Coord &c, int pp, int tp, int rdp) {
  int r = 0;
  for (char a : letters) {
    int ext = a == 'D' ? rdp : a == 'P' ? pp : tp;
    int v = a == 'D' ? c.rdp : a == 'P' ? c.pp : c.tp;
    r = r * ext + v;
  }
  return r;
}

bool same_group(Group g, const Coord &a, const Coord &b) {
  switch (g) {
    case Group::World: return true;
    case Group::PP: return a.tp == b.tp && a.rdp == b.rdp;
    case Group::TP: return a.pp == b.pp && a.rdp == b.rdp;
    case Group::RDP: return a.pp == b.pp && a.tp == b.tp;
    case Group::DP: return a.pp == b.pp;
    case Group::MP: return a.rdp == b.rdp;
  }
  return false;
}

}  // namespace

TEST(Placement, ParsesNamesAndPermutations) {
  EXPECT_EQ(Placement::parse("cluster").letters(), "DPT");
  EXPECT_EQ(Placement::parse("spread").letters(), "TPD");
  EXPECT_EQ(Placement::parse("SPREAD").letters(), "TPD");
  EXPECT_EQ(Placement::parse("ptd").letters(), "PTD");
  EXPECT_EQ(Placement().letters(), "DPT");
  for (const char *bad : {"", "DP", "DPTT", "DPP", "XYZ", "clustr", "DDT"})
    EXPECT_THROW(Placement::parse(bad), std::invalid_argument) << bad;
  try {
    Placement::parse("DPP");
    FAIL();
  } catch (const std::invalid_argument &e) {
    EXPECT_NE(std::string(e.what()).find("exactly once"), std::string::npos) << e.what();
  }
}

TEST(Layout, RejectsBadDegrees) {
  EXPECT_THROW(Layout(8, 3, 1), std::invalid_argument);
  EXPECT_THROW(Layout(8, 0, 1), std::invalid_argument);
  EXPECT_THROW(Layout(8, 1, -2), std::invalid_argument);
  EXPECT_THROW(Layout(0, 1, 1), std::invalid_argument);
  try {
    Layout(6, 4, 1);
    FAIL();
  } catch (const std::invalid_argument &e) {
    EXPECT_NE(std::string(e.what()).find("multiple of 4"), std::string::npos) << e.what();
  }
}

// pp * tp past INT_MAX: refused with the product in words, never wrapped
// (2^31-1 x 2 was -2, which divides 2) nor divided by (65536 x 65536 was 0).
TEST(Layout, RejectsDegreesWhoseProductOverflows) {
  const int big = 2147483647;
  for (auto [size, pp, tp] : {std::tuple{2, big, 2}, std::tuple{2, 2, big}, std::tuple{4, 65536, 65536},
                              std::tuple{big, big, big}, std::tuple{1, 46341, 46341}}) {
    try {
      Layout l(size, pp, tp);
      ADD_FAILURE() << size << " ranks, pp " << pp << " tp " << tp << " accepted, rdp " << l.rdp_size();
    } catch (const std::invalid_argument &e) {
      const std::string want = "multiple of " + std::to_string(static_cast<long long>(pp) * tp);
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(Layout(big, big, 1).rdp_size(), 1);  // the largest product that fits still works
}

// DESIGN.md's worked example: 8 ranks, pp=2.
TEST(Layout, WorkedExamplePipelineGroups) {
  Layout spread(8, 2, 1, Placement::parse("spread"));
  Layout cluster(8, 2, 1, Placement::parse("cluster"));
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(spread.group_members(Group::PP, r), (std::vector<int>{r, r + 4}));
    EXPECT_EQ(cluster.group_members(Group::PP, 2 * r), (std::vector<int>{2 * r, 2 * r + 1}));
  }
  // SMP-REFERENCE: spread dp groups [0-3] [4-7]; cluster [0,2,4,6] [1,3,5,7].
  EXPECT_EQ(spread.group_members(Group::DP, 5), (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(cluster.group_members(Group::DP, 3), (std::vector<int>{1, 3, 5, 7}));
}

TEST(Layout, FormulasFromDesign) {
  Layout dpt(8, 2, 2, Placement::parse("DPT"));
  Layout ptd(8, 2, 2, Placement::parse("PTD"));
  for (int rdp = 0; rdp < 2; ++rdp)
    for (int pp = 0; pp < 2; ++pp)
      for (int tp = 0; tp < 2; ++tp) {
        EXPECT_EQ(dpt.rank_of({pp, tp, rdp}), 4 * rdp + 2 * pp + tp);
        EXPECT_EQ(ptd.rank_of({pp, tp, rdp}), 4 * pp + 2 * tp + rdp);
      }
  // TPD: rank = tp*(PP*RDP) + pp*RDP + rdp, with pp=2, tp=2, rdp=3.
  Layout tpd(12, 2, 2, Placement::parse("TPD"));
  EXPECT_EQ(tpd.rank_of({1, 1, 2}), 1 * 6 + 1 * 3 + 2);
}

// Every (pp, tp, rdp) with degrees in 1..8 and size <= 64, every placement.
TEST(Layout, ExhaustiveAgainstReference) {
  int layouts = 0;
  for (int pp = 1; pp <= 8; ++pp)
    for (int tp = 1; tp <= 8; ++tp)
      for (int rdp = 1; rdp <= 8; ++rdp) {
        const int size = pp * tp * rdp;
        if (size > 64) continue;
        for (const char *pl : kPlacements) {
          const Placement placement = Placement::parse(pl);
          const Layout l(size, pp, tp, placement);
          ASSERT_EQ(l.rdp_size(), rdp);
          ++layouts;
          std::vector<Coord> coords(static_cast<size_t>(size));
          std::set<int> seen;
          for (int p = 0; p < pp; ++p)
            for (int t = 0; t < tp; ++t)
              for (int d = 0; d < rdp; ++d) {
                const Coord c{p, t, d};
                const int r = ref_rank(placement.letters(), c, pp, tp, rdp);
                ASSERT_EQ(l.rank_of(c), r);
                ASSERT_EQ(l.coord(r), c);
                seen.insert(r);
                coords[static_cast<size_t>(r)] = c;
              }
          ASSERT_EQ(static_cast<int>(seen.size()), size);  // bijection
          for (Group g : smp::topo::kAllGroups) {
            std::map<int, std::vector<int>> by_color;
            for (int r = 0; r < size; ++r) {
              std::vector<int> expect;
              for (int o = 0; o < size; ++o)
                if (same_group(g, coords[static_cast<size_t>(r)], coords[static_cast<size_t>(o)])) expect.push_back(o);
              const auto members = l.group_members(g, r);
              ASSERT_EQ(members, expect) << pl << " group " << smp::topo::group_name(g) << " rank " << r;
              ASSERT_EQ(static_cast<int>(members.size()), l.group_size(g));
              ASSERT_EQ(members[static_cast<size_t>(l.group_rank(g, r))], r);
              const int color = l.group_color(g, r);
              ASSERT_GE(color, 0);
              ASSERT_LT(color, size / l.group_size(g));
              by_color[color].push_back(r);
            }
            // Colours partition the world into exactly the groups.
            ASSERT_EQ(static_cast<int>(by_color.size()), size / l.group_size(g));
            for (auto &kv : by_color) ASSERT_EQ(kv.second, l.group_members(g, kv.second.front()));
          }
        }
      }
  EXPECT_GT(layouts, 1000);
}

TEST(Layout, RankOutOfRangeThrows) {
  Layout l(4, 2, 2);
  EXPECT_THROW(l.coord(4), std::out_of_range);
  EXPECT_THROW(l.coord(-1), std::out_of_range);
  EXPECT_THROW(l.rank_of({2, 0, 0}), std::out_of_range);
}
