"""The OpenBLAS core `r1` runs, so that the PyTorch reference (which links the same libopenblas) can be
given the same kernels. r1 picks the core itself at start-up (src/kernels/runtime.h); Debian 12's
OpenBLAS alone takes an AVX-512 Xeon for an SSE3 "Prescott"."""
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "tiny-fp8")


def r1_blas_core(r1):
    """The core name `r1 bench` reports (e.g. "SkylakeX")."""
    out = subprocess.run([r1, "bench", FIXTURE, "--prompt", "1", "--decode", "1", "--reps", "1", "--threads", "1",
                          "--json"], check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    return json.loads(out)["blas_core"]


def set_torch_core(r1, choice, env):
    """Sets the environment `env` (a dict, or os.environ before PyTorch is imported) for a PyTorch
    process: choice "r1" gives it r1's core, "library" the library's own pick. Returns the core name
    to print."""
    if choice == "r1":
        env["OPENBLAS_CORETYPE"] = r1_blas_core(r1)
        return env["OPENBLAS_CORETYPE"]
    env.pop("OPENBLAS_CORETYPE", None)
    return "library default"
