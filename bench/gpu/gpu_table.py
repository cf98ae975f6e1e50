"""Reads the GPU benchmarks' JSON lines and prints the short summary table
(markdown) that scripts/gpu-check.sh shows last.

    python3 gpu_table.py FILE...
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
        out.append("")
        out.append(f"Staged (CUDA) vs host collectives, float32 sum, {staged[0]['ranks']} ranks on one GPU, "
                   f"{staged[0]['device']}")
        out.append("| collective | MiB | host busbw GB/s | cuda busbw GB/s | cuda/host |")
        out.append("|---|---|---|---|---|")
        key = {(r["collective"], r["MiB"], r["memory"]): r for r in staged}
        for (coll, mib, mem), r in sorted(key.items()):
            if mem != "host" or (coll, mib, "cuda") not in key:
                continue
            c = key[(coll, mib, "cuda")]
            out.append(f"| {coll} | {mib} | {r['busbw_GBps']:.2f} | {c['busbw_GBps']:.2f} | "
                       f"{c['busbw_GBps'] / r['busbw_GBps']:.2f}x |")
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
    print("\n".join(out) if out else "no benchmark results")


if __name__ == "__main__":
    main(sys.argv[1:])
