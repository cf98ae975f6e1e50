#!/usr/bin/env python3
"""Writes dgx-2socket-8gpu.xml: the hwloc topology of a DGX-like training box,
for the binding-plan unit tests (no such machine is at hand).

2 packages, one NUMA node each, 8 cores x 2 hardware threads per package,
Linux-style PU numbering (core c has PUs c and c+16), and 4 NVIDIA A100s per
package at DGX A100's PCI bus ids. Also, to be told apart from the GPUs: a
Mellanox NIC, an NVSwitch (NVIDIA, but a bridge, not a CUDA device) and the
BMC's VGA (a display, but not NVIDIA's) on package 0; and the GPUs listed out
of bus order inside a host bridge.
    python3 make_dgx_xml.py > dgx-2socket-8gpu.xml
"""
import sys

CORES, THREADS, PACKAGES = 8, 2, 2
NPU = CORES * THREADS * PACKAGES
gp = [0]


def gpi():
    gp[0] += 1
    return gp[0]


def mask(pus):
    v = 0
    for p in pus:
        v |= 1 << p
    return "0x%08x" % v


def sets(pus, nodes):
    return (f'cpuset="{mask(pus)}" complete_cpuset="{mask(pus)}" '
            f'nodeset="{mask(nodes)}" complete_nodeset="{mask(nodes)}"')


def pkg_pus(p):
    first = p * CORES
    return [c + t * CORES * PACKAGES for t in range(THREADS) for c in range(first, first + CORES)]


def pcidev(busid, cls, vendor, device, uuid=None):
    info = f'\n{" " * 8}<info name="NVIDIAUUID" value="{uuid}"/>\n{" " * 6}' if uuid else ""
    return (f'      <object type="PCIDev" gp_index="{gpi()}" pci_busid="{busid}" '
            f'pci_type="{cls} [{vendor}:{device}] [{vendor}:0000] a1" pci_link_speed="31.5">{info}</object>\n')


GPUS = {0: ["0000:0f:00.0", "0000:07:00.0", "0000:4e:00.0", "0000:47:00.0"],   # out of order on purpose
        1: ["0000:87:00.0", "0000:90:00.0", "0000:b7:00.0", "0000:bd:00.0"]}
UUID = {b: "GPU-%d%d5c2e1f-0a4b-4c3d-9e8f-%012x" % (i, i, i)
        for i, b in enumerate(sorted(GPUS[0] + GPUS[1]))}

out = ['<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE topology SYSTEM "hwloc2.dtd">\n<topology version="2.0">\n',
       f'  <object type="Machine" os_index="0" {sets(range(NPU), range(PACKAGES))} gp_index="{gpi()}">\n',
       '    <info name="Backend" value="Linux"/>\n    <info name="HostName" value="dgx-like"/>\n']
for p in range(PACKAGES):
    pus = pkg_pus(p)
    out.append(f'    <object type="Package" os_index="{p}" {sets(pus, [p])} gp_index="{gpi()}">\n')
    out.append(f'      <object type="NUMANode" os_index="{p}" {sets(pus, [p])} gp_index="{gpi()}" '
               f'local_memory="1099511627776"/>\n')
    for c in range(p * CORES, (p + 1) * CORES):
        cp = [c + t * CORES * PACKAGES for t in range(THREADS)]
        out.append(f'      <object type="Core" os_index="{c}" {sets(cp, [p])} gp_index="{gpi()}">\n')
        for pu in cp:
            out.append(f'        <object type="PU" os_index="{pu}" {sets([pu], [p])} gp_index="{gpi()}"/>\n')
        out.append('      </object>\n')
    lo, hi = (0x00, 0x7f) if p == 0 else (0x80, 0xff)
    out.append(f'      <object type="Bridge" gp_index="{gpi()}" bridge_type="0-1" depth="0" '
               f'bridge_pci="0000:[{lo:02x}-{hi:02x}]">\n')
    for b in GPUS[p]:
        out.append(pcidev(b, "0302", "10de", "20b0", UUID[b]))
    if p == 0:
        out.append(pcidev("0000:0c:00.0", "0207", "15b3", "101b"))  # ConnectX-6 InfiniBand
        out.append(pcidev("0000:6a:00.0", "0680", "10de", "1af1"))  # NVSwitch: NVIDIA, not a GPU
        out.append(pcidev("0000:72:00.0", "0300", "1a03", "2000"))  # BMC's VGA: a GPU class, not NVIDIA
    out.append('      </object>\n    </object>\n')
out.append('  </object>\n</topology>\n')
sys.stdout.write("".join(out))
