#!/usr/bin/env python3
"""The rest of the front end's surface, under mpirun (pp = SMP_PP_SIZE):
@smp.step's non_split_inputs and input_split_axes, a tuple of outputs,
StepOutput's reductions, an evaluation step without backward, keyword
arguments to the model, partition_map / local_state_dict /
load_state_dict, and a consolidated checkpoint that resumes into the same
numbers. Each result is checked against the plain module in this process.

    mpirun -np 3 -x SMP_PP_SIZE=3 python3 step_api_check.py
"""
import shutil
import sys
import tempfile

import torch
import torch.nn as nn

import smp


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(4))
        self.head = nn.Linear(8, 3)

    def forward(self, x, scale=None):
        h = torch.tanh(self.a(x))
        for b in self.blocks:
            h = torch.tanh(b(h))
        out = self.head(h)
        return out if scale is None else out * scale


FAILED = []


def check(what, ok):
    if not ok:
        FAILED.append(what)
    if smp.rank() == 0:
        print(f"{what}: {'ok' if ok else 'FAIL'}", flush=True)


def close(a, b, tol=1e-5):
    return torch.allclose(a, b, rtol=tol, atol=tol)


def main():
    torch.set_num_threads(1)
    M = 2
    smp.init({"microbatches": M})
    torch.manual_seed(0)
    ref = Net()
    torch.manual_seed(0)
    model = smp.DistributedModel(Net())
    opt = smp.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1))

    # x arrives as (features, batch): split along axis 1; `scale` whole.
    @smp.step(non_split_inputs=["scale"], input_split_axes={"xt": 1})
    def train_step(model, xt, y, scale):
        out = model(xt.t(), scale=scale)
        loss = nn.functional.cross_entropy(out, y)
        model.backward(loss)
        return loss, out

    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
    scale = torch.tensor([1.0, 2.0, 0.5])
    opt.zero_grad()
    loss, out = train_step(model, X.t().contiguous(), Y, scale)
    opt.step()
    check("a tuple returns one StepOutput per element",
          isinstance(loss, smp.StepOutput) and len(out.outputs) == M)
    ref_outs = [ref(x, scale=scale) for x in X.chunk(M)]
    ref_losses = [nn.functional.cross_entropy(o, y) for o, y in zip(ref_outs, Y.chunk(M))]
    check("non_split_inputs and input_split_axes: outputs equal one process's",
          close(out.concat(), torch.cat(ref_outs).detach()))
    check("StepOutput.stack", out.stack().shape == (M, 4, 3))
    check("reduce_mean and reduce_sum",
          close(loss.reduce_mean(), torch.stack(ref_losses).mean().detach())
          and close(loss.reduce_sum(), torch.stack(ref_losses).sum().detach()))
    ropt = torch.optim.SGD(ref.parameters(), lr=0.1)
    ropt.zero_grad()
    (sum(ref_losses) / M).backward()
    ropt.step()
    sd = model.state_dict()
    check("state_dict: the whole model on every rank, trained as one process",
          sd.keys() == ref.state_dict().keys()
          and all(close(sd[k], v) for k, v in ref.state_dict().items()))

    pmap = model.partition_map()
    local = model.local_state_dict()
    mine = {k for k in sd if pmap[k.rpartition(".")[0]] == smp.pp_rank()}
    check("local_state_dict holds this stage's tensors",
          set(local) == mine and set(pmap.values()) == set(range(smp.pp_size())))

    @smp.step
    def eval_step(model, x):
        return model(x)

    opt.zero_grad(set_to_none=True)
    with torch.no_grad():
        evaluated = eval_step(model, X).concat()
    check("an evaluation step: same outputs, no gradients",
          close(evaluated, ref(X).detach()) and all(p.grad is None for p in model.parameters()))

    # load_state_dict: a full state dict (the reference's, perturbed).
    target = {k: v + 0.01 for k, v in ref.state_dict().items()}
    model.load_state_dict(target)
    sd2 = model.state_dict()
    check("load_state_dict takes a full state dict", all(close(sd2[k], v) for k, v in target.items()))

    # A consolidated checkpoint, resumed: the same weights and user content.
    tmp = tempfile.mkdtemp() if smp.rank() == 0 else None
    from smp.model import broadcast_object
    tmp = broadcast_object(tmp, 0, smp.WORLD)
    smp.save_checkpoint(tmp, "t1", partial=False, model=model, optimizer=opt,
                        user_content={"epoch": 3})
    model.load_state_dict(ref.state_dict())
    user = smp.resume_from_checkpoint(tmp)
    sd3 = model.state_dict()
    check("save_checkpoint(partial=False) / resume_from_checkpoint",
          user == {"epoch": 3} and all(close(sd3[k], v) for k, v in target.items()))
    smp.barrier()
    if smp.rank() == 0:
        shutil.rmtree(tmp)

    verdict = torch.tensor([len(FAILED)], dtype=torch.int32)
    smp.allreduce(verdict, smp.MAX, smp.WORLD)
    smp.finalize()
    return 1 if verdict.item() else 0


if __name__ == "__main__":
    sys.exit(main())
