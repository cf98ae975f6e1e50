// Hardware discovery and binding plans, from the hwloc XML files in
// tests/data: a DGX-like 2-socket box with 8 GPUs (made by
// tests/data/make_dgx_xml.py, whose description gives the expected values
// below) and the 2-core VM these tests were written on (lstopo --of xml).
// The live host is checked against the kernel's own view (sched_getaffinity).
#include "topo/hardware.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <set>
#include <stdexcept>
#include <string>

using smp::topo::Bind;
using smp::topo::CpuSet;
using smp::topo::HwTopology;
using smp::topo::Machine;
using smp::topo::plan_binding;
using smp::topo::visible_gpus;

namespace {

// tests/data, found from this file's path as the compiler saw it (relative
// to the build root, which holds build.ninja above the test executable).
std::string data_dir() {
  if (const char *d = std::getenv("SMP_TEST_DATA")) return d;
  std::string src = __FILE__;
  std::string dir = src.substr(0, src.rfind('/'));
  if (!dir.empty() && dir[0] != '/') {
    char buf[PATH_MAX] = {};
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    std::string root(buf, n > 0 ? static_cast<size_t>(n) : 0);
    do root = root.substr(0, root.rfind('/'));
    while (!root.empty() && access((root + "/build.ninja").c_str(), F_OK) != 0);
    dir = root + "/" + dir;
  }
  return dir + "/../../data";
}

Machine load(const std::string &name) {
  return HwTopology::from_xml_file(data_dir() + "/" + name, false).machine();
}

CpuSet range(int lo, int hi) {  // [lo, hi]
  CpuSet s;
  for (int i = lo; i <= hi; ++i) s.push_back(i);
  return s;
}

CpuSet join(CpuSet a, const CpuSet &b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  return a;
}

// DGX-like box: package p has cores 8p..8p+7, core c has PUs c and c+16.
CpuSet dgx_core(int c) { return {c, c + 16}; }
CpuSet dgx_node(int p) { return join(range(8 * p, 8 * p + 7), range(8 * p + 16, 8 * p + 23)); }

const char *kDgxBus[] = {"0000:07:00.0", "0000:0f:00.0", "0000:47:00.0", "0000:4e:00.0",
                         "0000:87:00.0", "0000:90:00.0", "0000:b7:00.0", "0000:bd:00.0"};

CpuSet this_process_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof set, &set);
  CpuSet out;
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &set)) out.push_back(i);
  return out;
}

}  // namespace

TEST(CpuList, FormatsAndParsesLinuxCpuLists) {
  EXPECT_EQ(smp::topo::format_cpus({}), "");
  EXPECT_EQ(smp::topo::format_cpus({3}), "3");
  EXPECT_EQ(smp::topo::format_cpus({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(smp::topo::parse_cpus("0-3,8,10-11"), CpuSet({0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(smp::topo::parse_cpus("5,1-2,2"), CpuSet({1, 2, 5}));
  for (const char *bad : {"a", "1-", "3-1", "1,,2", "-1", "1 2"})
    EXPECT_THROW(smp::topo::parse_cpus(bad), std::invalid_argument) << bad;
}

TEST(Bind, ParsesTheFiveModes) {
  for (const char *name : {"auto", "gpu", "numa", "core", "none"})
    EXPECT_STREQ(smp::topo::bind_name(smp::topo::parse_bind(name)), name);
  EXPECT_THROW(smp::topo::parse_bind("socket"), std::invalid_argument);
  EXPECT_THROW(smp::topo::parse_bind("GPU"), std::invalid_argument);
}

TEST(DgxMachine, FindsTheEightGpusInBusOrderAndNothingElse) {
  const Machine m = load("dgx-2socket-8gpu.xml");
  ASSERT_EQ(m.gpus.size(), 8u);  // not the NVSwitch, the NIC or the BMC's VGA
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(m.gpus[i].pci_bus_id, kDgxBus[i]);
    EXPECT_EQ(m.gpus[i].uuid.substr(0, 6), "GPU-" + std::to_string(i) + std::to_string(i));
    EXPECT_EQ(m.gpus[i].near, dgx_node(i / 4)) << i;
  }
  ASSERT_EQ(m.numa.size(), 2u);
  EXPECT_EQ(m.numa[0].cpus, dgx_node(0));
  EXPECT_EQ(m.numa[1].cpus, dgx_node(1));
  ASSERT_EQ(m.cores.size(), 16u);
  for (int c = 0; c < 16; ++c) EXPECT_EQ(m.cores[c].cpus, dgx_core(c));
  EXPECT_EQ(m.cpus, range(0, 31));
}

TEST(DgxMachine, CudaVisibleDevicesFollowsCudasRules) {
  const Machine m = load("dgx-2socket-8gpu.xml");
  std::string warn;
  EXPECT_EQ(visible_gpus(m.gpus, nullptr), std::vector<int>({0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(visible_gpus(m.gpus, ""), std::vector<int>{});
  EXPECT_EQ(visible_gpus(m.gpus, "3,1"), std::vector<int>({3, 1}));
  EXPECT_EQ(visible_gpus(m.gpus, " 2 , 6"), std::vector<int>({2, 6}));
  EXPECT_EQ(visible_gpus(m.gpus, "0,9,1", &warn), std::vector<int>({0}));
  EXPECT_NE(warn.find("'9'"), std::string::npos) << warn;
  EXPECT_EQ(visible_gpus(m.gpus, "1,1,2"), std::vector<int>({1}));
  EXPECT_EQ(visible_gpus(m.gpus, "-1"), std::vector<int>{});
  EXPECT_EQ(visible_gpus(m.gpus, "GPU-55,GPU-225c"), std::vector<int>({5, 2}));  // UUID prefixes
  EXPECT_EQ(visible_gpus(m.gpus, "GPU-"), std::vector<int>{});                  // no id at all
  EXPECT_EQ(visible_gpus(m.gpus, "MIG-1234"), std::vector<int>{});
}

TEST(DgxMachine, GpuBindingGivesEachRankItsGpuAndThatGpusNumaNode) {
  const Machine m = load("dgx-2socket-8gpu.xml");
  const std::vector<int> all = visible_gpus(m.gpus, nullptr);
  for (int local = 0; local < 8; ++local) {
    for (Bind b : {Bind::Gpu, Bind::Auto}) {
      const auto r = plan_binding(m, all, b, local, 8);
      EXPECT_EQ(r.device, local);
      EXPECT_EQ(r.bind, Bind::Gpu);
      EXPECT_EQ(r.cpus, dgx_node(local / 4)) << local;
    }
  }
  // 16 ranks share the 8 GPUs round-robin.
  for (int local = 0; local < 16; ++local) {
    const auto r = plan_binding(m, all, Bind::Gpu, local, 16);
    EXPECT_EQ(r.device, local % 8);
    EXPECT_EQ(r.cpus, dgx_node((local % 8) / 4));
  }
  // Device numbers are CUDA's, after CUDA_VISIBLE_DEVICES; cpus follow the GPU.
  const std::vector<int> swapped = visible_gpus(m.gpus, "4,5,6,7,0,1,2,3");
  for (int local = 0; local < 8; ++local) {
    const auto r = plan_binding(m, swapped, Bind::Gpu, local, 8);
    EXPECT_EQ(r.device, local);
    EXPECT_EQ(r.cpus, dgx_node(local < 4 ? 1 : 0)) << local;
  }
}

TEST(DgxMachine, NumaBindingGoesRoundRobinOverNodes) {
  const Machine m = load("dgx-2socket-8gpu.xml");
  const std::vector<int> all = visible_gpus(m.gpus, nullptr);
  for (int local = 0; local < 6; ++local) {
    const auto r = plan_binding(m, all, Bind::Numa, local, 6);
    EXPECT_EQ(r.cpus, dgx_node(local % 2)) << local;
    EXPECT_EQ(r.device, local);  // binding does not change the device choice
  }
}

TEST(DgxMachine, CoreBindingGivesDisjointBlocksCoveringEveryCore) {
  const Machine m = load("dgx-2socket-8gpu.xml");
  EXPECT_EQ(plan_binding(m, {}, Bind::Core, 0, 4).cpus, join(range(0, 3), range(16, 19)));
  EXPECT_EQ(plan_binding(m, {}, Bind::Core, 3, 4).cpus, join(range(12, 15), range(28, 31)));
  for (int n = 1; n <= 16; ++n) {
    std::set<int> seen;
    size_t fewest = 99, most = 0;
    for (int local = 0; local < n; ++local) {
      const CpuSet cpus = plan_binding(m, {}, Bind::Core, local, n).cpus;
      for (int c : cpus) EXPECT_TRUE(seen.insert(c).second) << "cpu " << c << " twice with " << n << " ranks";
      fewest = std::min(fewest, cpus.size() / 2);
      most = std::max(most, cpus.size() / 2);
    }
    EXPECT_EQ(seen.size(), 32u) << n;
    EXPECT_LE(most - fewest, 1u) << n;
  }
  // More ranks than cores: one core each, wrapping around.
  for (int local = 0; local < 20; ++local)
    EXPECT_EQ(plan_binding(m, {}, Bind::Core, local, 20).cpus, dgx_core(local % 16));
}

TEST(DgxMachine, NoneAndBadInput) {
  const Machine m = load("dgx-2socket-8gpu.xml");
  const auto r = plan_binding(m, visible_gpus(m.gpus, nullptr), Bind::None, 3, 8);
  EXPECT_TRUE(r.cpus.empty());
  EXPECT_EQ(r.device, 3);
  EXPECT_THROW(plan_binding(m, {}, Bind::Gpu, 0, 8), std::invalid_argument);  // GPUs hidden
  EXPECT_THROW(plan_binding(m, {0}, Bind::Gpu, 8, 8), std::invalid_argument);
  EXPECT_THROW(plan_binding(m, {0}, Bind::Gpu, -1, 8), std::invalid_argument);
  EXPECT_EQ(plan_binding(m, {}, Bind::Auto, 0, 8).bind, Bind::None);
}

TEST(GpuCpus, FallsBackToTheLocalityWhenItHoldsSeveralNumaNodes) {
  Machine m;
  m.cpus = range(0, 7);
  m.numa = {{0, range(0, 3)}, {1, range(4, 7)}, {2, {}}};  // node 2: memory only
  EXPECT_EQ(smp::topo::gpu_cpus(m, {"0000:01:00.0", "", range(0, 7)}), range(0, 7));
  EXPECT_EQ(smp::topo::gpu_cpus(m, {"0000:01:00.0", "", range(4, 7)}), range(4, 7));
  EXPECT_EQ(smp::topo::gpu_cpus(m, {"0000:01:00.0", "", {}}), range(0, 7));
  // Numa binding skips the memory-only node.
  for (int local = 0; local < 4; ++local)
    EXPECT_EQ(plan_binding(m, {}, Bind::Numa, local, 4).cpus, local % 2 ? range(4, 7) : range(0, 3));
}

TEST(TwoCoreVm, HasNoGpuOneNodeTwoCores) {
  const Machine m = load("2core-vm.xml");
  EXPECT_TRUE(m.gpus.empty());  // a virtio disk and NIC only
  ASSERT_EQ(m.numa.size(), 1u);
  EXPECT_EQ(m.numa[0].cpus, CpuSet({0, 1}));
  ASSERT_EQ(m.cores.size(), 2u);
  EXPECT_EQ(m.cores[0].cpus, CpuSet({0}));
  EXPECT_EQ(m.cores[1].cpus, CpuSet({1}));
  const auto a = plan_binding(m, {}, Bind::Auto, 0, 2);
  EXPECT_EQ(a.bind, Bind::None);
  EXPECT_EQ(a.device, -1);
  EXPECT_TRUE(a.cpus.empty());
  for (int local = 0; local < 4; ++local) {
    EXPECT_EQ(plan_binding(m, {}, Bind::Core, local, 2 + 2 * (local / 2)).cpus, CpuSet({local % 2}));
    EXPECT_EQ(plan_binding(m, {}, Bind::Numa, local, 4).cpus, CpuSet({0, 1}));
  }
  EXPECT_THROW(plan_binding(m, {}, Bind::Gpu, 0, 1), std::invalid_argument);
}

TEST(ThisHost, DiscoveryMatchesTheKernelAndSurvivesXml) {
  const HwTopology hw = HwTopology::discover();
  const Machine m = hw.machine();
  EXPECT_EQ(m.cpus, this_process_cpus());
  CpuSet from_cores;
  for (const auto &c : m.cores) from_cores = join(from_cores, c.cpus);
  EXPECT_EQ(from_cores, m.cpus);

  const Machine again = HwTopology::from_xml_text(hw.export_xml_text(), false).machine();
  EXPECT_EQ(again.cpus, m.cpus);
  ASSERT_EQ(again.cores.size(), m.cores.size());
  ASSERT_EQ(again.gpus.size(), m.gpus.size());
  for (size_t i = 0; i < m.gpus.size(); ++i) {
    EXPECT_EQ(again.gpus[i].pci_bus_id, m.gpus[i].pci_bus_id);
    EXPECT_EQ(again.gpus[i].uuid, m.gpus[i].uuid);
    EXPECT_EQ(again.gpus[i].near, m.gpus[i].near);
  }
  EXPECT_THROW(HwTopology::from_xml_text("<topology", false), std::runtime_error);
  EXPECT_THROW(HwTopology::from_xml_file(data_dir() + "/no-such.xml", false), std::runtime_error);
}

TEST(ThisHost, BindRestrictsTheProcessToTheGivenCpus) {
  const HwTopology hw = HwTopology::discover();
  const CpuSet before = this_process_cpus();
  hw.bind({before.back()});
  EXPECT_EQ(this_process_cpus(), CpuSet({before.back()}));
  hw.bind(before);
  EXPECT_EQ(this_process_cpus(), before);
}
