"""torch.optim.AdamW(fused=True) and (foreach=True) on one flat float32
parameter of N elements, with the device-to-device copy bound measured in
the same run (bytes read + written, 28 per element for AdamW). Medians of
--reps steps timed with CUDA events, after a warm-up. Prints JSON lines.

    python3 adamw_torch.py [--elements N] [--reps R]
"""
import argparse
import json
import statistics
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--elements", type=int, default=250_000_000)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("adamw_torch.py: no torch", file=sys.stderr)
        return 77
    if not torch.cuda.is_available():
        print("adamw_torch.py: no GPU", file=sys.stderr)
        return 77
    n, dev = a.elements, torch.device("cuda")

    def median_ms(fn):
        fn()
        torch.cuda.synchronize()
        ts = []
        for _ in range(a.reps):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            ts.append(s.elapsed_time(e))
        return statistics.median(ts)

    src = torch.empty(2 * n, device=dev)
    dst = torch.empty(2 * n, device=dev)
    copy_ms = median_ms(lambda: dst.copy_(src))
    copy_gbs = 2 * (2 * n * 4) / (copy_ms * 1e-3) / 1e9
    del src, dst
    bound_ms = 28.0 * n / (copy_gbs * 1e9) * 1e3
    name = torch.cuda.get_device_name(0)
    for kind in ("fused", "foreach"):
        p = torch.nn.Parameter(torch.full((n,), 0.5, device=dev))
        p.grad = torch.full((n,), 1e-3, device=dev)
        opt = torch.optim.AdamW([p], lr=1e-4, weight_decay=0.01, **{kind: True})
        ms = median_ms(opt.step)
        print(json.dumps({"bench": "adamw", "impl": "torch " + kind, "device": name, "elements": n,
                          "copy_GBps": round(copy_gbs, 1), "bound_ms": round(bound_ms, 3),
                          "ms": round(ms, 3), "fraction_of_bound": round(bound_ms / ms, 3)}))
        del opt, p
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
