#include "topo/hardware.h"

#include <dirent.h>
#include <hwloc.h>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace smp::topo {

// ---------------------------------------------------------------- pure part

std::string format_cpus(const CpuSet &cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) out += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

static int parse_index(const std::string &text, const std::string &whole) {
  if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument("bad cpu list '" + whole + "': expected numbers and ranges such as 0-3,8");
  return std::stoi(text);
}

CpuSet parse_cpus(const std::string &text) {
  CpuSet out;
  if (text.empty()) return out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(pos, comma - pos);
    const size_t dash = item.find('-');
    const int lo = parse_index(item.substr(0, dash), text);
    const int hi = dash == std::string::npos ? lo : parse_index(item.substr(dash + 1), text);
    if (hi < lo) throw std::invalid_argument("bad cpu list '" + text + "': range " + item + " runs backwards");
    for (int c = lo; c <= hi; ++c) out.push_back(c);
    pos = comma + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

static std::string trim(const std::string &s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// One CUDA_VISIBLE_DEVICES entry -> index into gpus, or -1 if it names none.
static int resolve_entry(const std::vector<Gpu> &gpus, const std::string &entry) {
  if (!entry.empty() && entry.find_first_not_of("0123456789") == std::string::npos) {
    if (entry.size() > 9) return -1;
    const int idx = std::stoi(entry);
    return idx < static_cast<int>(gpus.size()) ? idx : -1;
  }
  if (entry.rfind("GPU-", 0) != 0 || entry.size() <= 4) return -1;  // MIG-, -1, junk
  int found = -1;
  for (size_t i = 0; i < gpus.size(); ++i) {
    if (!gpus[i].uuid.empty() && gpus[i].uuid.rfind(entry, 0) == 0) {
      if (found >= 0) return -1;  // ambiguous prefix
      found = static_cast<int>(i);
    }
  }
  return found;
}

std::vector<int> visible_gpus(const std::vector<Gpu> &gpus, const char *cuda_visible_devices,
                              std::string *warning) {
  std::vector<int> out;
  if (cuda_visible_devices == nullptr) {
    for (size_t i = 0; i < gpus.size(); ++i) out.push_back(static_cast<int>(i));
    return out;
  }
  const std::string list = cuda_visible_devices;
  size_t pos = 0;
  while (pos < list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    const std::string entry = trim(list.substr(pos, comma - pos));
    const int idx = resolve_entry(gpus, entry);
    if (idx < 0 || std::find(out.begin(), out.end(), idx) != out.end()) {
      if (warning)
        *warning = "CUDA_VISIBLE_DEVICES entry '" + entry + "' names no GPU of this host (or repeats one); " +
                   "it and the entries after it are ignored, as CUDA does";
      break;
    }
    out.push_back(idx);
    pos = comma + 1;
  }
  return out;
}

Bind parse_bind(const std::string &text) {
  if (text == "auto") return Bind::Auto;
  if (text == "gpu") return Bind::Gpu;
  if (text == "numa") return Bind::Numa;
  if (text == "core") return Bind::Core;
  if (text == "none") return Bind::None;
  throw std::invalid_argument("unknown binding '" + text + "'; use auto, gpu, numa, core or none");
}

const char *bind_name(Bind bind) {
  switch (bind) {
    case Bind::Auto: return "auto";
    case Bind::Gpu: return "gpu";
    case Bind::Numa: return "numa";
    case Bind::Core: return "core";
    case Bind::None: return "none";
  }
  return "?";
}

static bool subset(const CpuSet &a, const CpuSet &b) {  // a within b
  return std::includes(b.begin(), b.end(), a.begin(), a.end());
}

CpuSet gpu_cpus(const Machine &machine, const Gpu &gpu) {
  if (gpu.near.empty()) return machine.cpus;
  const NumaNode *only = nullptr;
  int count = 0;
  for (const NumaNode &n : machine.numa) {
    if (!n.cpus.empty() && subset(n.cpus, gpu.near)) {
      only = &n;
      ++count;
    }
  }
  return count == 1 ? only->cpus : gpu.near;
}

RankBinding plan_binding(const Machine &machine, const std::vector<int> &visible, Bind bind,
                         int local_rank, int local_size) {
  if (local_size < 1 || local_rank < 0 || local_rank >= local_size)
    throw std::invalid_argument("local rank " + std::to_string(local_rank) + " is outside 0.." +
                                std::to_string(local_size - 1));
  RankBinding out;
  if (!visible.empty()) out.device = local_rank % static_cast<int>(visible.size());
  out.bind = bind == Bind::Auto ? (visible.empty() ? Bind::None : Bind::Gpu) : bind;
  switch (out.bind) {
    case Bind::Auto:
    case Bind::None:
      break;
    case Bind::Gpu:
      if (visible.empty())
        throw std::invalid_argument("--bind gpu needs a GPU, but this host shows none; use --bind auto, numa, "
                                    "core or none");
      out.cpus = gpu_cpus(machine, machine.gpus.at(static_cast<size_t>(visible[static_cast<size_t>(out.device)])));
      break;
    case Bind::Numa: {
      std::vector<const NumaNode *> nodes;
      for (const NumaNode &n : machine.numa)
        if (!n.cpus.empty()) nodes.push_back(&n);
      out.cpus = nodes.empty() ? machine.cpus : nodes[static_cast<size_t>(local_rank) % nodes.size()]->cpus;
      break;
    }
    case Bind::Core: {
      const int ncores = static_cast<int>(machine.cores.size());
      if (ncores == 0) {
        out.cpus = machine.cpus;
        break;
      }
      // Blocks of consecutive cores (consecutive cores share caches and
      // NUMA nodes); one core each, wrapping, when cores are too few.
      int begin = local_rank % ncores, end = begin + 1;
      if (local_size <= ncores) {
        begin = static_cast<int>(static_cast<long>(local_rank) * ncores / local_size);
        end = static_cast<int>(static_cast<long>(local_rank + 1) * ncores / local_size);
      }
      for (int c = begin; c < end; ++c) {
        const CpuSet &pus = machine.cores[static_cast<size_t>(c)].cpus;
        out.cpus.insert(out.cpus.end(), pus.begin(), pus.end());
      }
      std::sort(out.cpus.begin(), out.cpus.end());
      break;
    }
  }
  return out;
}

// --------------------------------------------------------------- hwloc part

struct HwTopology::Impl {
  hwloc_topology_t topo = nullptr;
  ~Impl() {
    if (topo) hwloc_topology_destroy(topo);
  }
};

HwTopology::HwTopology(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HwTopology::HwTopology(HwTopology &&) noexcept = default;
HwTopology &HwTopology::operator=(HwTopology &&) noexcept = default;
HwTopology::~HwTopology() = default;

static CpuSet to_cpus(hwloc_const_bitmap_t set) {
  CpuSet out;
  if (set == nullptr || hwloc_bitmap_weight(set) < 0) return out;  // null or infinite
  unsigned i;
  hwloc_bitmap_foreach_begin(i, set) out.push_back(static_cast<int>(i));
  hwloc_bitmap_foreach_end();
  return out;
}

static bool is_nvidia_gpu(hwloc_obj_t obj) {
  const unsigned cls = obj->attr->pcidev.class_id;
  // 0x0300 VGA controller, 0x0302 3D controller (data-centre GPUs); NVIDIA's
  // other PCI functions (NVSwitch bridges, audio) are not CUDA devices.
  return obj->attr->pcidev.vendor_id == 0x10de && (cls == 0x0300 || cls == 0x0302);
}

static std::string bus_id(hwloc_obj_t obj) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", static_cast<unsigned>(obj->attr->pcidev.domain),
                static_cast<unsigned>(obj->attr->pcidev.bus), static_cast<unsigned>(obj->attr->pcidev.dev),
                static_cast<unsigned>(obj->attr->pcidev.func));
  return buf;
}

static const char kUuidInfo[] = "NVIDIAUUID";  // the name hwloc's NVML plugin uses

static std::string uuid_of(hwloc_obj_t pci) {
  if (const char *u = hwloc_obj_get_info_by_name(pci, kUuidInfo)) return u;
  for (hwloc_obj_t c = pci->io_first_child; c; c = c->next_sibling)
    if (const char *u = hwloc_obj_get_info_by_name(c, kUuidInfo)) return u;
  return {};
}

// "GPU UUID:  GPU-8f6c..." in the driver's per-GPU file; no CUDA, no NVML.
static std::string driver_uuid(const std::string &bus) {
  std::ifstream in("/proc/driver/nvidia/gpus/" + bus + "/information");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("GPU UUID:", 0) == 0) return trim(line.substr(9));
  }
  return {};
}

static unsigned long lean_flags() {
#if HWLOC_API_VERSION >= 0x00020800
  return HWLOC_TOPOLOGY_FLAG_NO_DISTANCES | HWLOC_TOPOLOGY_FLAG_NO_MEMATTRS | HWLOC_TOPOLOGY_FLAG_NO_CPUKINDS;
#else
  return 0;
#endif
}

// Plugins we do not need are not even loaded: dlopen'ing them (and
// OpenCL, X11, libxml2 or libpciaccess behind them) costs more than the rest
// of a rank's start. GPU runtimes are never wanted; hwloc's built-in XML
// parser does for our files; the Linux backend finds PCI devices in sysfs by
// itself, so the pciaccess plugin is only loaded to look for GPUs. A user's
// own HWLOC_PLUGINS_BLACKLIST wins; ours is not left in the environment.
static hwloc_topology_t new_topology(bool with_pci) {
  const bool ours = std::getenv("HWLOC_PLUGINS_BLACKLIST") == nullptr;
  if (ours)
    setenv("HWLOC_PLUGINS_BLACKLIST",
           with_pci ? "hwloc_cuda,hwloc_nvml,hwloc_opencl,hwloc_rsmi,hwloc_levelzero,hwloc_gl,hwloc_xml_libxml"
                    : "hwloc_cuda,hwloc_nvml,hwloc_opencl,hwloc_rsmi,hwloc_levelzero,hwloc_gl,hwloc_xml_libxml,"
                      "hwloc_pci",
           1);
  hwloc_topology_t topo;
  const int rc = hwloc_topology_init(&topo);
  if (ours) unsetenv("HWLOC_PLUGINS_BLACKLIST");
  if (rc != 0) throw std::runtime_error("hwloc: cannot initialise a topology");
  // Discovery keeps PCI devices and their bridges (not the full I/O tree:
  // faster, smaller XML) when GPUs may exist. Caches, distances, memory
  // attributes and CPU kinds are not needed for binding; leaving them out
  // spares reading hundreds of sysfs files, and makes the XML smaller.
  hwloc_topology_set_io_types_filter(topo, with_pci ? HWLOC_TYPE_FILTER_KEEP_IMPORTANT : HWLOC_TYPE_FILTER_KEEP_NONE);
  hwloc_topology_set_cache_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_NONE);
  hwloc_topology_set_icache_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_NONE);
  hwloc_topology_set_flags(topo, lean_flags());
  return topo;
}

// I/O discovery is most of hwloc's load time (tens of ms); it is only
// needed for GPUs. A glance at sysfs says whether an NVIDIA display or 3D
// controller exists at all; without sysfs, assume it might.
static bool may_have_nvidia_gpu() {
  DIR *dir = opendir("/sys/bus/pci/devices");
  if (dir == nullptr) return true;
  bool found = false;
  while (dirent *d = readdir(dir)) {
    if (d->d_name[0] == '.') continue;
    const std::string base = std::string("/sys/bus/pci/devices/") + d->d_name;
    std::string vendor, cls;
    std::ifstream(base + "/vendor") >> vendor;
    std::ifstream(base + "/class") >> cls;
    if (vendor == "0x10de" && (cls.rfind("0x0300", 0) == 0 || cls.rfind("0x0302", 0) == 0)) {
      found = true;
      break;
    }
  }
  closedir(dir);
  return found;
}

static void load(hwloc_topology_t topo, const std::string &what) {
  if (hwloc_topology_load(topo) != 0)
    throw std::runtime_error("hwloc cannot load " + what + ": " + std::strerror(errno));
}

HwTopology HwTopology::discover() {
  auto impl = std::make_unique<Impl>();
  impl->topo = new_topology(may_have_nvidia_gpu());
  for (const char *plugin : {"cuda", "nvml", "opencl", "rsmi", "levelzero", "gl"})
    hwloc_topology_set_components(impl->topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, plugin);
  hwloc_topology_t topo = impl->topo;
  load(topo, "this host's topology");
  for (hwloc_obj_t o = nullptr; (o = hwloc_get_next_pcidev(topo, o));) {
    if (!is_nvidia_gpu(o) || !uuid_of(o).empty()) continue;
    const std::string uuid = driver_uuid(bus_id(o));
    if (!uuid.empty()) hwloc_obj_add_info(o, kUuidInfo, uuid.c_str());
  }
  return HwTopology(std::move(impl));
}

HwTopology HwTopology::from_xml_file(const std::string &path, bool this_system) {
  auto impl = std::make_unique<Impl>();
  impl->topo = new_topology(false);
  hwloc_topology_set_io_types_filter(impl->topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  if (hwloc_topology_set_xml(impl->topo, path.c_str()) != 0)
    throw std::runtime_error("hwloc cannot read the topology file " + path);
  if (this_system) hwloc_topology_set_flags(impl->topo, lean_flags() | HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM);
  load(impl->topo, "the topology file " + path);
  return HwTopology(std::move(impl));
}

HwTopology HwTopology::from_xml_text(const std::string &xml, bool this_system) {
  auto impl = std::make_unique<Impl>();
  impl->topo = new_topology(false);
  hwloc_topology_set_io_types_filter(impl->topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  if (hwloc_topology_set_xmlbuffer(impl->topo, xml.c_str(), static_cast<int>(xml.size()) + 1) != 0)
    throw std::runtime_error("hwloc cannot parse the topology XML it was given");
  if (this_system) hwloc_topology_set_flags(impl->topo, lean_flags() | HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM);
  load(impl->topo, "the topology XML it was given");
  return HwTopology(std::move(impl));
}

Machine HwTopology::machine() const {
  hwloc_topology_t topo = impl_->topo;
  Machine m;
  m.cpus = to_cpus(hwloc_topology_get_topology_cpuset(topo));
  const int nnuma = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  for (int i = 0; i < nnuma; ++i) {
    hwloc_obj_t o = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(i));
    m.numa.push_back({static_cast<int>(o->os_index), to_cpus(o->cpuset)});
  }
  // Some virtual machines report PUs without cores: then every PU is a core.
  const hwloc_obj_type_t core_type =
      hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
  const int ncores = hwloc_get_nbobjs_by_type(topo, core_type);
  for (int i = 0; i < ncores; ++i)
    m.cores.push_back({to_cpus(hwloc_get_obj_by_type(topo, core_type, static_cast<unsigned>(i))->cpuset)});
  for (hwloc_obj_t o = nullptr; (o = hwloc_get_next_pcidev(topo, o));) {
    if (!is_nvidia_gpu(o)) continue;
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(topo, o);
    m.gpus.push_back({bus_id(o), uuid_of(o), to_cpus(anc ? anc->cpuset : nullptr)});
  }
  std::sort(m.gpus.begin(), m.gpus.end(),
            [](const Gpu &a, const Gpu &b) { return a.pci_bus_id < b.pci_bus_id; });
  return m;
}

void HwTopology::export_xml(const std::string &path) const {
  if (hwloc_topology_export_xml(impl_->topo, path.c_str(), 0) != 0)
    throw std::runtime_error("hwloc cannot write the topology file " + path + ": " + std::strerror(errno));
}

std::string HwTopology::export_xml_text() const {
  char *buf = nullptr;
  int len = 0;
  if (hwloc_topology_export_xmlbuffer(impl_->topo, &buf, &len, 0) != 0)
    throw std::runtime_error(std::string("hwloc cannot export the topology: ") + std::strerror(errno));
  std::string out(buf, len > 0 ? static_cast<size_t>(len) - 1 : 0);  // len counts the final NUL
  hwloc_free_xmlbuffer(impl_->topo, buf);
  return out;
}

void HwTopology::bind(const CpuSet &cpus) const {
  hwloc_bitmap_t set = hwloc_bitmap_alloc();
  for (int c : cpus) hwloc_bitmap_set(set, static_cast<unsigned>(c));
  const int rc = hwloc_set_cpubind(impl_->topo, set, HWLOC_CPUBIND_PROCESS);
  const int err = errno;
  hwloc_bitmap_free(set);
  if (rc != 0)
    throw std::runtime_error("cannot bind to cpus " + format_cpus(cpus) + ": " + std::strerror(err));
}

}  // namespace smp::topo
