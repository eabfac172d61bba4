#!/usr/bin/env python3
"""Training step speed: r1 against the PyTorch reference (tools/ref/train_ref.py) on the same model, batch,
precision, machine and thread count, and r1's model FLOP utilization against the machine's measured peak GEMM
FLOP/s (a large GEMM of the step's precision on the same threads).

  /usr/bin/python3 bench/bench_train.py [--threads 2] [--steps 5] [--rounds 2] [--precision f32|bf16]
      [--torch-blas-core r1|library] [--torch-omp-wait-policy PASSIVE|ACTIVE|unset] [--json]

Model: `r1 new-model --preset moe-small` (hidden 512, 8 layers, 32 experts top-4 + 1 shared,
MLA, MTP), f32 weights, batch 8 x 256 random tokens. Runs alternate r1, PyTorch, r1, PyTorch, ...
(`--rounds` pairs, as shared noisy cores call for); each run's first step is a warm-up, and the figures
are medians over the remaining steps of all rounds.
Both sides run the same OpenBLAS kernels by default: PyTorch links the same libopenblas, and is given the
core r1 picks for itself (`--torch-blas-core library` leaves it the library's own pick instead, which
on Debian 12 is the SSE3 "Prescott" core for AVX-512 Xeons). The peak GEMM is measured on that core too.
Each side runs with OpenMP's wait policy at its faster setting here: r1 with OMP_WAIT_POLICY unset (it sets
its own spin count), PyTorch unset too by default (`--torch-omp-wait-policy`; measured A B on this step:
10.3-13.4 s unset against 11.9-16.8 s with PASSIVE; bench_grpo.py tries both for the GRPO step).
Precision: f32 by default, everything in f32 on both sides. `--precision bf16` is mixed precision: r1 runs
`r1 pretrain --precision bf16`, whose matrix products (forward and backward; not the router's, not attention's)
round their operands to bf16 (to nearest even) and accumulate in f32. PyTorch runs the forward under
torch.autocast("cpu", bfloat16): its matmuls / einsums, and their backward, run in bf16 through oneDNN (not OpenBLAS) with f32 accumulation and return
bf16; train_ref.py casts them back to f32 before norms, softmax, the router and the losses, which leaves SwiGLU's
silu * up the only elementwise part of the forward in bf16. Both keep the master weights, gradients, AdamW and
the losses in f32. The peak GEMM is then bf16's (bf16 tensors, oneDNN), so MFU is against the bf16 peak.
Needs Debian's python3-torch. Timings are printed, never asserted.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from blas_core import set_torch_core

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
R1 = os.path.join(ROOT, "build", "release", "r1")
B, T = 8, 256


def model_flops_per_token(cfg):
    """6 x (matmul parameters a token uses) + the attention score/value products (fwd + bwd)."""
    C, H, R = cfg["hidden_size"], cfg["num_attention_heads"], cfg["kv_lora_rank"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    q = cfg["q_lora_rank"] * C + H * (dn + dr) * cfg["q_lora_rank"] if cfg["q_lora_rank"] else H * (dn + dr) * C
    attn = q + (R + dr) * C + H * (dn + dv) * R + C * H * dv
    expert = 3 * C * cfg["moe_intermediate_size"]
    params = 0
    for layer in range(cfg["num_hidden_layers"]):
        params += attn
        if layer < cfg["first_k_dense_replace"]:
            params += 3 * C * cfg["intermediate_size"]
        else:
            params += (cfg["num_experts_per_tok"] + cfg["n_shared_experts"]) * expert + cfg["n_routed_experts"] * C
    params += C * cfg["vocab_size"]  # LM head
    # MTP module: eh_proj, one MoE block, the shared head again
    params += 2 * C * C + attn + (cfg["num_experts_per_tok"] + cfg["n_shared_experts"]) * expert + C * cfg["vocab_size"]
    L = cfg["num_hidden_layers"] + 1
    attention = 3 * 2 * H * (dn + dr + dv) * (T / 2) * L
    return 6 * params + attention


def run_r1(model, data, threads, steps, precision, work):
    metrics = os.path.join(work, "r1.jsonl")
    cmd = [R1, "pretrain", "--init", model, "--data", data, "--out", os.path.join(work, "r1out"), "--steps", str(steps),
           "--batch", str(B), "--seq", str(T), "--lr", "1e-4", "--no-shuffle", "--threads", str(threads),
           "--metrics", metrics]
    if precision == "bf16":
        cmd += ["--precision", "bf16"]
    if os.path.exists(metrics):
        os.remove(metrics)
    # r1 sets its own OpenMP spin policy; the PASSIVE wait policy meant for PyTorch (set in this process's
    # environment) slowed its step by ~4 % when it was inherited.
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL, env=env)
    rows = [json.loads(l) for l in open(metrics)]
    return [r["step_seconds"] for r in rows[1:]]


def run_torch(model, ids, threads, steps, precision):
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tools", "ref"))
    import train_ref as tr
    torch.set_num_threads(threads)
    m = tr.load_train_model(model, dtype=torch.float32)
    opt = torch.optim.AdamW(list(m.params.values()), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    times = []
    for s in range(steps):
        rows = [s * B + b for b in range(B)]
        batch = tr.Batch([ids[j * T:j * T + T] for j in rows], [ids[j * T + 1:j * T + T + 1] for j in rows],
                         [[0] * T] * B, mtp_weight=0.3, balance_alpha=1e-4)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = tr.losses(m, batch)
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(list(m.params.values()), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    return times[1:]


def peak_gemm(threads, precision):
    """The machine's peak GEMM rate in `precision`: best of 20 2048^3 products (PyTorch's BLAS for f32, oneDNN for
    bf16; same threads); on shared cores a short sample can miss every quiet moment and understate the peak (which
    would overstate MFU)."""
    import torch
    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    best = float("inf")
    for _ in range(20):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048 ** 3 / best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="steps per run; the first is a warm-up")
    ap.add_argument("--rounds", type=int, default=2, help="alternating r1 / PyTorch run pairs")
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--torch-blas-core", choices=["r1", "library"], default="r1")
    ap.add_argument("--torch-omp-wait-policy", default="unset", choices=["PASSIVE", "ACTIVE", "unset"])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.torch_omp_wait_policy == "unset":
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = a.torch_omp_wait_policy
    # PyTorch is imported below, after this; OpenBLAS reads OPENBLAS_CORETYPE when it loads.
    torch_core = set_torch_core(R1, a.torch_blas_core, os.environ)
    with tempfile.TemporaryDirectory() as work:
        model = os.path.join(work, "model")
        subprocess.run([R1, "new-model", "--preset", "moe-small", "--dtype", "f32", "--out", model, "--seed", "1"],
                       check=True, stderr=subprocess.DEVNULL)
        cfg = json.load(open(os.path.join(model, "config.json")))
        rng = random.Random(0)
        ids = [rng.randrange(2, cfg["vocab_size"]) for _ in range(a.steps * B * T + 1)]
        data = os.path.join(work, "d.ids")
        open(data, "w").write(" ".join(map(str, ids)))
        r1_steps, torch_steps, load = [], [], [os.getloadavg()[0]]
        for _ in range(a.rounds):
            r1_steps += run_r1(model, data, a.threads, a.steps, a.precision, work)
            torch_steps += run_torch(model, ids, a.threads, a.steps, a.precision)
            load.append(os.getloadavg()[0])
        r1_s, torch_s = statistics.median(r1_steps), statistics.median(torch_steps)
        peak = peak_gemm(a.threads, a.precision)
    flops = model_flops_per_token(cfg) * B * T
    res = {"precision": a.precision, "threads": a.threads, "torch_blas_core": torch_core,
           "torch_omp_wait_policy": a.torch_omp_wait_policy, "rounds": a.rounds, "load_average_1min": load,
           "r1_steps": r1_steps, "torch_steps": torch_steps, "batch": B, "seq": T, "r1_step_seconds": r1_s, "torch_step_seconds": torch_s,
           "r1_tokens_per_s": B * T / r1_s, "torch_tokens_per_s": B * T / torch_s, "speedup_vs_torch": torch_s / r1_s,
           "model_gflop_per_step": flops / 1e9, "peak_gemm_gflops": peak / 1e9, "mfu": flops / r1_s / peak}
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"moe-small, batch {B} x {T}, {a.precision}, {a.threads} threads (medians of steps 2..{a.steps} over "
              f"{a.rounds} alternating rounds), PyTorch's OpenBLAS core: {torch_core}, OMP_WAIT_POLICY "
              f"{a.torch_omp_wait_policy}")
        print(f"r1       {res['r1_step_seconds']:.2f} s/step  {res['r1_tokens_per_s']:.0f} tokens/s")
        print(f"PyTorch  {res['torch_step_seconds']:.2f} s/step  {res['torch_tokens_per_s']:.0f} tokens/s")
        print(f"ratio    {res['speedup_vs_torch']:.2f}x the PyTorch reference step")
        print(f"MFU      {100 * res['mfu']:.1f}% ({res['model_gflop_per_step']:.0f} GFLOP per step against a measured "
              f"{a.precision} GEMM peak of {res['peak_gemm_gflops']:.0f} GFLOP/s)")
        print("steps    r1 " + " ".join(f"{x:.2f}" for x in r1_steps) + " | PyTorch " +
              " ".join(f"{x:.2f}" for x in torch_steps))
        print("load average (1 min) before and after each round: " + ", ".join(f"{x:.2f}" for x in load))


if __name__ == "__main__":
    main()
