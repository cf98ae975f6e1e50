#!/usr/bin/env python3
"""train_gpt.py --device cuda where torch sees no GPU is a usage error:
exit status 2 and one line saying what is missing, before any MPI
start-up; an unknown device is argparse's usage error (2). Exits 77 where
torch does see a GPU (the error cannot happen there; the GPU suite trains
on it instead).

    device_usage_test.py EXAMPLE
"""
import subprocess
import sys

import torch

if torch.cuda.is_available():
    print("device_usage_test: torch sees a GPU here: skipped")
    sys.exit(77)

example = sys.argv[1]
r = subprocess.run([sys.executable, example, "--device", "cuda", "--steps", "1"],
                   capture_output=True, text=True, timeout=120)
assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
assert r.stderr.count("\n") == 1 and "--device cuda" in r.stderr and "no CUDA device" in r.stderr, r.stderr
assert r.stdout == "", r.stdout
r = subprocess.run([sys.executable, example, "--device", "tpu"], capture_output=True, text=True,
                   timeout=120)
assert r.returncode == 2 and "invalid choice: 'tpu'" in r.stderr, (r.returncode, r.stderr)
print("device_usage_test: OK")
