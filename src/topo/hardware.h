// The hardware of one host as the launcher needs it: GPUs (CUDA devices),
// NUMA nodes, cores, and the binding plan of each local rank.
//
// Two halves. Machine and the planning functions are pure data and logic
// (unit-tested from hwloc XML files in tests/data). HwTopology wraps hwloc:
// discovery of this host, XML export/import (smprun discovers once and hands
// the XML to its ranks, so no rank rediscovers) and binding.
//
// GPUs are found as NVIDIA PCI devices (display or 3D controllers), never
// through the CUDA runtime or NVML: initialising CUDA in a launcher costs
// hundreds of milliseconds and memory on every GPU.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace smp::topo {

// OS indexes of processing units (hardware threads), sorted and unique.
using CpuSet = std::vector<int>;
// "0-3,8,10-11" (the Linux cpulist format); "" for an empty set.
std::string format_cpus(const CpuSet &cpus);
// Inverse of format_cpus; throws std::invalid_argument on bad text.
CpuSet parse_cpus(const std::string &text);

struct Gpu {
  std::string pci_bus_id;  // "0000:07:00.0", lower-case hex
  std::string uuid;        // "GPU-..." when known (for CUDA_VISIBLE_DEVICES)
  CpuSet near;             // PUs of its closest non-I/O ancestor
};

struct NumaNode {
  int os_index = 0;
  CpuSet cpus;  // may be empty (memory-only nodes)
};

struct Core {
  CpuSet cpus;  // its PUs
};

struct Machine {
  std::vector<Gpu> gpus;       // every NVIDIA GPU, in PCI bus order
  std::vector<NumaNode> numa;  // in topology order
  std::vector<Core> cores;     // in topology order
  CpuSet cpus;                 // every PU of the machine we may use
};

// The GPUs CUDA shows a process, in CUDA's device order, as indexes into
// `gpus`. CUDA numbers devices by PCI bus id when CUDA_DEVICE_ORDER=PCI_BUS_ID
// and fastest first otherwise, which is PCI order too on hosts whose GPUs are
// all alike (the hosts hybrid-parallel jobs run on). `cuda_visible_devices`
// (nullptr = unset) follows CUDA's rules: a comma-separated list of indexes
// or GPU UUIDs (a unique prefix is enough); "" hides every GPU; the list ends
// at the first entry that is invalid, unknown or repeated, and `warning` (if
// not null) then says which entry was dropped.
std::vector<int> visible_gpus(const std::vector<Gpu> &gpus, const char *cuda_visible_devices,
                              std::string *warning = nullptr);

// How a rank is bound: Gpu = the cores of its GPU's NUMA node; Numa = ranks
// round-robin over the NUMA nodes that have cores; Core = a disjoint block
// of cores per local rank; Auto = Gpu when there are GPUs, else None.
enum class Bind { Auto, Gpu, Numa, Core, None };
// "auto" | "gpu" | "numa" | "core" | "none"; throws std::invalid_argument.
Bind parse_bind(const std::string &text);
const char *bind_name(Bind bind);

struct RankBinding {
  int device = -1;  // index among the visible GPUs (SMP_DEVICE); -1 = none
  Bind bind = Bind::None;  // what Auto resolved to
  CpuSet cpus;      // where to bind; empty = leave the rank unbound
};

// The device and cpus of local rank `local_rank` of `local_size` on a host.
// `visible` comes from visible_gpus. Ranks share GPUs round-robin when there
// are more ranks than GPUs. When there are more ranks than cores, Core binding
// gives each rank one core, wrapping around. Throws std::invalid_argument for
// Bind::Gpu without GPUs and for a local rank outside 0..local_size-1.
RankBinding plan_binding(const Machine &machine, const std::vector<int> &visible, Bind bind,
                         int local_rank, int local_size);

// The PUs of the GPU's NUMA node: the one NUMA node inside the GPU's
// locality; when the locality holds several (or none), the locality itself
// (or every PU if the locality is unknown).
CpuSet gpu_cpus(const Machine &machine, const Gpu &gpu);

// hwloc, loaded once. Not copyable.
class HwTopology {
 public:
  // This host: cores, NUMA nodes and, when sysfs shows an NVIDIA display or
  // 3D controller (or there is no sysfs), the important PCI devices. The
  // CUDA, NVML, OpenCL, ROCm and GL plugins are kept out (they would
  // initialise GPU runtimes). GPU UUIDs come from the NVIDIA driver's /proc
  // files when present and are stored in the topology, so they survive XML.
  static HwTopology discover();
  // An XML file written by export_xml or `lstopo --of xml`. `this_system`
  // asserts it describes this host, which makes bind() really bind.
  static HwTopology from_xml_file(const std::string &path, bool this_system);
  // The same from XML text (what export_xml_text returned).
  static HwTopology from_xml_text(const std::string &xml, bool this_system);

  HwTopology(HwTopology &&) noexcept;
  HwTopology &operator=(HwTopology &&) noexcept;
  ~HwTopology();

  Machine machine() const;
  void export_xml(const std::string &path) const;  // throws std::runtime_error
  std::string export_xml_text() const;             // throws std::runtime_error
  // Binds the calling process (all its threads, and what it execs) to cpus.
  void bind(const CpuSet &cpus) const;             // throws std::runtime_error

 private:
  struct Impl;
  explicit HwTopology(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace smp::topo
