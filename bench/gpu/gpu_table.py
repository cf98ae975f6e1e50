"""Reads the GPU benchmarks' JSON lines and prints the short summary table
(markdown) that scripts/gpu-check.sh shows last.

    python3 gpu_table.py FILE...   (mps_compare.sh's output among them: its own section)
"""
import json
import sys


def main(paths):
    rows = []
    for p in paths:
        try:
            with open(p) as f:
                rows += [json.loads(l) for l in f if l.startswith("{")]
        except OSError:
            pass
    # bench/gpu/mps_compare.sh's rows (tagged "mps") have a section of their own.
    mps = [r for r in rows if "mps" in r]
    rows = [r for r in rows if "mps" not in r]
    out = []
    adamw = [r for r in rows if r["bench"] == "adamw"]
    if adamw:
        out.append(f"Fused AdamW, {adamw[0]['elements']:.3g} float32 elements, {adamw[0]['device']}")
        out.append("| implementation | ms (median) | copy bound ms | % of bound | copy GB/s (r+w) |")
        out.append("|---|---|---|---|---|")
        for r in adamw:
            out.append(f"| {r['impl']} | {r['ms']:.3f} | {r['bound_ms']:.3f} | "
                       f"{100 * r['fraction_of_bound']:.0f}% | {r['copy_GBps']:.0f} |")
    staged = [r for r in rows if r["bench"] == "staged"]
    if staged:
        # Each path's run has its own host rows: a ratio compares one run.
        out.append("")
        out.append(f"CUDA vs host collectives, float32 sum, {staged[0]['ranks']} ranks on one GPU, "
                   f"{staged[0]['device']} (cuda/host: each path against the host rows of its own run)")
        out.append("| collective | MiB | host busbw GB/s | staged GB/s | staged/host | ipc GB/s | ipc/host |")
        out.append("|---|---|---|---|---|---|---|")
        key = {(r.get("path", "staged"), r["collective"], r["MiB"], r["memory"]): r for r in staged}
        cells = sorted({(r["collective"], r["MiB"]) for r in staged})
        for coll, mib in cells:
            line = f"| {coll} | {mib} |"
            host = key.get(("staged", coll, mib, "host")) or key.get(("ipc", coll, mib, "host"))
            line += f" {host['busbw_GBps']:.2f} |" if host else " - |"
            for path in ("staged", "ipc"):
                h, c = key.get((path, coll, mib, "host")), key.get((path, coll, mib, "cuda"))
                if h and c:
                    line += f" {c['busbw_GBps']:.2f} | {c['busbw_GBps'] / h['busbw_GBps']:.2f}x |"
                else:
                    line += " - | - |"
            out.append(line)
        # The target: at least 0.8x the host busbw from 1 MiB up.
        for path in ("staged", "ipc"):
            ratios = [(coll, mib, key[(path, coll, mib, "cuda")]["busbw_GBps"] /
                       key[(path, coll, mib, "host")]["busbw_GBps"])
                      for coll, mib in cells if mib >= 1 and (path, coll, mib, "cuda") in key
                      and (path, coll, mib, "host") in key]
            if ratios:
                low = [f"{c} {m:g} MiB {r:.2f}x" for c, m, r in ratios if r < 0.8]
                out.append(f"{path}: 0.8x of host from 1 MiB up: " +
                           ("met in every row" if not low else "missed at " + ", ".join(low)))
    step = [r for r in rows if r["bench"] == "sharded_step"]
    if step:
        if out:
            out.append("")
        out.append(f"Sharded optimizer step on CUDA memory (AdamW, {step[0]['ranks']} rank, "
                   f"{step[0]['elements']:.3g} elements in {step[0]['tensors']} tensors) vs its fused kernel, "
                   f"{step[0]['device']}")
        out.append("| model dtype | clip + finite check | step ms | kernel ms | step/kernel |")
        out.append("|---|---|---|---|---|")
        for r in step:
            out.append(f"| {r['dtype']} | {'yes' if r['clip'] else 'no'} | {r['step_ms']:.3f} | "
                       f"{r['kernel_ms']:.3f} | {r['step_over_kernel']:.2f}x |")
    launch = [r for r in rows if r["bench"] == "launch"]
    if launch:
        # Kernels slow together but fast alone, copies fast in both: the
        # ranks' contexts time-slice the GPU's compute engines.
        if out:
            out.append("")
        out.append(f"Step latency, {launch[0]['ranks']} ranks on one GPU (median us, step + stream sync), "
                   f"{launch[0]['device']}")
        out.append("| step | alone | together | batch8 together (per step) |")
        out.append("|---|---|---|---|")
        us = {(r["step"], r["mode"]): r["us"] for r in launch}
        for name in dict.fromkeys(r["step"] for r in launch):
            cells = [us.get((name, m)) for m in ("alone", "together", "batch8 together")]
            out.append(f"| {name} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
    if mps:
        out += mps_section(mps)
    print("\n".join(out) if out else "no benchmark results")


def mps_section(rows):
    """cuda/host busbw per configuration, without and with MPS, and the step
    latency that explains it."""
    out = [""]
    steps = {(r["mps"], r["step"], r["mode"]): r["us"] for r in rows if r["bench"] == "launch"}
    kernel = [steps.get((m, "empty kernel", "together")) for m in ("no", "yes")]
    if None not in kernel:
        out.append(f"An empty kernel with 2 ranks at once: {kernel[0]:.0f} us without MPS, {kernel[1]:.0f} us with")
    staged = [r for r in rows if r["bench"] == "staged"]
    if not staged:
        return out + ["MPS comparison: no collective rows (no MPS daemon here?)"]
    key = {(r["mps"], r["config"], r["collective"], r["MiB"], r["memory"]): r for r in staged}
    cols = [(c, m) for c in dict.fromkeys(r["config"] for r in staged) for m in ("no", "yes")
            if any(k[0] == m and k[1] == c for k in key)]
    out.append(f"cuda/host busbw without and with MPS, {staged[0]['ranks']} ranks on one {staged[0]['device']}")
    out.append("| collective | MiB | " + " | ".join(f"{c} ({'MPS' if m == 'yes' else 'no MPS'})" for c, m in cols) + " |")
    out.append("|---|---|" + "---|" * len(cols))
    for coll, mib in sorted({(r["collective"], r["MiB"]) for r in staged}):
        cells = []
        for c, m in cols:
            h, d = key.get((m, c, coll, mib, "host")), key.get((m, c, coll, mib, "cuda"))
            cells.append(f"{d['busbw_GBps'] / h['busbw_GBps']:.2f}x" if h and d else "-")
        out.append(f"| {coll} | {mib:g} | " + " | ".join(cells) + " |")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
