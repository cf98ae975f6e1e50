"""The sharded optimizer (through libsmp's C API, loaded with ctypes) against
torch.optim on the same data, under mpirun: every rank gets its own
gradients; torch steps a full-size copy on their average. Float32 within
1e-6 relative (to max(|param|, lr)); bf16 model copies within half a bf16 ulp of torch's float32
result; SGD (momentum, dampening, nesterov, weight decay); clipping against
torch.nn.utils.clip_grad_norm_.

usage: mpirun -np N python3 test_optim_torch.py path/to/libsmp.so
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smp_optim_ctypes as S  # noqa: E402

STEPS = 5
SIZES = [1, 7, 1000, 3, 4097, 64, 12345]  # odd sizes, straddling buckets


def model(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(f"layer{i}.w", (torch.randn(n, generator=g) * 0.5).to(dtype))
            for i, n in enumerate(SIZES)]


def rank_grads(rank, step, dtype):
    # Multiples of 2^-10 below 0.25: exact in bf16 and in any sum, so the
    # average does not depend on the reduction order.
    g = torch.Generator().manual_seed(1000 * step + rank)
    return [(torch.randint(-255, 256, (n,), generator=g).float() / 1024).to(dtype) for n in SIZES]


def avg_grads(nranks, step, dtype):
    gs = [rank_grads(r, step, torch.float32) for r in range(nranks)]
    return [(sum(g[i] for g in gs) / nranks).to(dtype).float() for i in range(len(SIZES))]


def run(lib, rank, nranks, dtype, config, make_torch_opt, clip=None):
    # Relative to max(|param|, lr): an update of size ~lr carries float32
    # rounding of ~lr * 2^-24 per operation whatever the parameter's size,
    # and torch fuses some of them (FMA) where the kernel does not.
    lr = config.lr
    params = model(dtype)
    grads = [torch.zeros_like(p) for _, p in params]
    opt = S.Optimizer(lib, config, params, grads)
    ref = [p.detach().float().clone().requires_grad_(True) for _, p in params]
    topt = make_torch_opt(ref)
    norms = []
    for step in range(1, STEPS + 1):
        for g, mine in zip(grads, rank_grads(rank, step, dtype)):
            g.copy_(mine)
        skipped, norm = opt.step()
        assert not skipped
        for r, a in zip(ref, avg_grads(nranks, step, dtype)):
            r.grad = a.clone()
        if clip is not None:
            exact = float(sum((r.grad.double() ** 2).sum() for r in ref)) ** 0.5
            tnorm = float(torch.nn.utils.clip_grad_norm_(ref, clip))
            norms.append((norm, exact, tnorm))
        topt.step()
    opt.close()
    worst = 0.0
    for (name, p), r in zip(params, ref):
        r = r.detach()
        got = p.float()
        if dtype == torch.float32:
            bound = 1e-6 * r.abs().clamp_min(lr)
        else:  # round to nearest: half an ulp = 2^-8 relative for bf16
            bound = (2.0 ** -8) * r.abs() * (1 + 1e-4) + 1e-6 * r.abs().clamp_min(lr)
        err = (got - r).abs()
        bad = (err > bound).nonzero()
        assert bad.numel() == 0, (f"{name}: {bad.numel()} elements off, e.g. [{int(bad[0])}] "
                                  f"{float(got[bad[0]])} vs torch {float(r[bad[0]])}")
        worst = max(worst, float((err / r.abs().clamp_min(lr)).max()))
    # The norm is summed in double here; torch sums in float32 (~1e-6).
    for mine, exact, theirs in norms:
        assert abs(mine - exact) <= 1e-9 * exact, (mine, exact)
        assert abs(mine - theirs) <= 1e-5 * theirs, (mine, theirs)
    return worst


def main():
    lib = S.Lib(sys.argv[1])
    lib.init()
    rank, nranks = lib.rank_size(S.SMP_DP_GROUP)
    torch.set_num_threads(1)
    results = []

    def adamw(ps, **kw):
        return torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05, **kw)

    cfg = S.Config.init(kind=S.SMP_ADAMW, lr=1e-2, weight_decay=0.05, bucket_bytes=16384)
    results.append(("AdamW f32 vs torch", run(lib, rank, nranks, torch.float32, cfg, adamw)))
    results.append(("AdamW f32 vs torch foreach",
                    run(lib, rank, nranks, torch.float32, cfg, lambda ps: adamw(ps, foreach=True))))
    results.append(("AdamW bf16 model / f32 master vs torch f32",
                    run(lib, rank, nranks, torch.bfloat16, cfg, adamw)))
    cc = S.Config.init(kind=S.SMP_ADAMW, lr=1e-2, weight_decay=0.05, bucket_bytes=8192,
                       max_grad_norm=0.5)
    results.append(("AdamW f32 + clip_grad_norm_ 0.5 vs torch",
                    run(lib, rank, nranks, torch.float32, cc, adamw, clip=0.5)))
    for mom, damp, nest, wd in [(0.9, 0.0, False, 0.0), (0.9, 0.1, False, 1e-3), (0.8, 0.0, True, 1e-2)]:
        sc = S.Config.init(kind=S.SMP_SGD, lr=0.05, momentum=mom, dampening=damp,
                           nesterov=int(nest), weight_decay=wd, bucket_bytes=16384)
        results.append((f"SGD m={mom} d={damp} nesterov={nest} wd={wd} vs torch",
                        run(lib, rank, nranks, torch.float32, sc,
                            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=mom, dampening=damp,
                                                       nesterov=nest, weight_decay=wd))))
    lib.finalize()
    if rank == 0:
        for name, worst in results:
            print(f"ok  {name}: worst relative difference {worst:.2e} ({nranks} ranks)")


if __name__ == "__main__":
    main()
