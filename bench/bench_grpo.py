#!/usr/bin/env python3
"""GRPO step speed: `r1 grpo` against the PyTorch reference doing the same step (tools/ref/grpo_ref.py) on the
same small MoE model, prompts, precision, machine and thread count.

  /usr/bin/python3 bench/bench_grpo.py [--threads 2] [--steps 3] [--rounds 2] [--precision f32|bf16]
      [--no-rollout-tape] [--json]

One step = rollout (P prompts x G completions at temperature 1, latent-cache batched decode, log pi_old per token,
rewards) + update (group-normalized advantages, clipped-ratio token-mean loss with beta = 0 and mu = 1 plus the
balance loss, forward + backward over all completions in micro-batches of 16, clip, AdamW, correction-bias update).
Defaults: P = 8, G = 8, at most 64 new tokens, arithmetic problems (digits=2, ops=+-).

Model (written here with `r1 new-model`): hidden 256, 4 layers (1 dense + 3 MoE), 16 routed experts of width 256
top-4 (4 groups keep 2) + 1 shared, MLA with 4 heads, q LoRA 128, kv LoRA 64, head dims 32/16/32, no MTP,
f32 weights, byte-level BPE tokenizer of 512 tokens trained on the task's worked solutions (11.4M parameters,
4.3M active per token).

Equal work: r1 stops a completion at EOS, which the untrained model samples about once per V tokens, so its
completions average a little under the cap; the PyTorch run of each round then generates exactly that round's mean
r1 completion length for every sequence. The ratio compares seconds per completion token (the token counts are
printed), so a residual length difference does not count for either side.
The untrained model earns no reward, so every group's advantages are zero and only the balance loss has a gradient;
neither side skips any work for that (both run the whole backward whatever the advantages).

The same step, not the same arithmetic: r1's update takes its forward's feed-forward activations (dense MLP and
MoE: ~85 % of the forward's multiply-adds here) from what its rollout recorded for the same weights and tokens
(`r1 grpo`'s rollout tape, README "The update reuses the rollout's feed-forward activations") and recomputes only
the norms and attention; the PyTorch reference recomputes the whole forward. `--no-rollout-tape` makes r1 recompute
it too.

Precision: f32 by default. `--precision bf16` runs `r1 grpo --precision bf16` (the update's matrix products with
operands rounded to bf16 and f32 accumulation; weights, AdamW, norms, softmax, losses in f32; r1's rollout samples
from a bf16 copy of the policy's matrices, repacked after each step's update) against `grpo_ref.py --precision
bf16` (the rollout's and the update's forwards under PyTorch's CPU autocast to bf16; its docstring says which ops
that covers).

Runs alternate r1, PyTorch, r1, PyTorch, ... (`--rounds`); each run's first step is a warm-up, and figures are
medians over the remaining steps of all rounds. r1 runs with OMP_WAIT_POLICY unset (it sets its own spin policy).
PyTorch's faster OpenMP wait policy depends on the machine's load: on 2 cores shared with another busy process,
spinning threads (ACTIVE) made its rollouts ~45x slower, while on a quieter AMD EPYC its f32 step took 3.01 s with
ACTIVE against 4.61 s with PASSIVE. So by default (`--torch-omp-wait-policy best`) every round runs PyTorch under
both PASSIVE and ACTIVE, and the figures are those of the policy with the faster median step (both are printed).
PyTorch links the same libopenblas as r1 and is
given the OpenBLAS core r1 picks for itself (`--torch-blas-core library` leaves it the library's own pick, which
on Debian 12 is the SSE3 "Prescott" core for AVX-512 Xeons). The load average is printed with the figures.
Needs Debian's python3-torch (PyTorch runs in a child /usr/bin/python3). Timings are printed, never asserted.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile

from blas_core import set_torch_core

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
R1 = os.path.join(ROOT, "build", "release", "r1")
GRPO_REF = os.path.join(ROOT, "tools", "ref", "grpo_ref.py")
TORCH_PYTHON = "/usr/bin/python3"
TASK, TASK_ARGS = "arithmetic", "digits=2,ops=+-"

# The small MoE model: a scaled-down `--preset moe-small` (same YaRN settings and router layout).
CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "torch_dtype": "float32",
    "vocab_size": 512, "bos_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": False,
    "hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "first_k_dense_replace": 1,
    "moe_layer_freq": 1, "num_attention_heads": 4, "num_key_value_heads": 4,
    "q_lora_rank": 128, "kv_lora_rank": 64, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32,
    "n_routed_experts": 16, "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2, "n_shared_experts": 1,
    "moe_intermediate_size": 256, "routed_scaling_factor": 2.5, "norm_topk_prob": True,
    "scoring_func": "sigmoid", "topk_method": "noaux_tc", "hidden_act": "silu", "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0, "max_position_embeddings": 1024,
    "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256, "beta_fast": 32.0,
                     "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0},
    "num_nextn_predict_layers": 0, "attention_bias": False, "attention_dropout": 0.0, "use_cache": True,
}


def r1(*args, **kw):
    return subprocess.run([R1, *args], check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, **kw)


def make_model(work):
    """Tokenizer trained on worked solutions of the task, then the randomly initialized checkpoint with it."""
    corpus = os.path.join(work, "corpus.txt")
    with open(corpus, "w") as f:
        f.write(r1("task", "--task", TASK, "--task-args", TASK_ARGS, "--n", "2000", "--solutions").stdout)
    tok = os.path.join(work, "tok")
    r1("tokenizer", "train", "--corpus", corpus, "--vocab-size", str(CONFIG["vocab_size"]), "--out", tok)
    cfg_path = os.path.join(work, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(CONFIG, f, indent=1)
    model = os.path.join(work, "model")
    r1("new-model", "--config", cfg_path, "--out", model, "--dtype", "f32", "--no-mtp", "--seed", "1")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok, name), model)
    return model


def make_prompts(model, n, work):
    """The first n training problems exactly as r1 grpo prompts them (chat template + generation prompt, token
    ids) with their answers -> prompts.json for grpo_ref.py. r1 grpo takes problem s*P+i at step s."""
    problems = [json.loads(line) for line in
                r1("task", "--task", TASK, "--task-args", TASK_ARGS, "--n", str(n), "--json").stdout.splitlines()]
    msg = os.path.join(work, "messages.json")
    prompts = []
    for p in problems:
        with open(msg, "w") as f:
            json.dump([{"role": "user", "content": p["prompt"]}], f)
        out = json.loads(r1("chat-template", "--tokenizer", model, "--messages", msg, "--add-generation-prompt",
                            "--json").stdout)
        prompts.append({"ids": out["ids"], "answer": p["answer"]})
    path = os.path.join(work, "prompts.json")
    with open(path, "w") as f:
        json.dump(prompts, f)
    return path


def run_r1(model, a, work, rnd):
    """-> measured steps: [{"rollout", "update", "tokens"}] (the first step is dropped as a warm-up)."""
    metrics = os.path.join(work, f"r1-{rnd}.jsonl")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    precision = ["--precision", "bf16"] if a.precision == "bf16" else []  # f32 is the default
    if a.no_rollout_tape:
        precision.append("--no-rollout-tape")
    r1("grpo", "--init", model, "--task", TASK, "--task-args", TASK_ARGS, "--out", os.path.join(work, "r1out"),
       "--steps", str(a.steps), "--prompts-per-step", str(a.prompts_per_step), "--group", str(a.group),
       "--max-new-tokens", str(a.max_new_tokens), "--temperature", "1.0", "--lr", "1e-4", "--threads",
       str(a.threads), "--metrics", metrics, *precision, env=env)
    with open(metrics) as f:
        rows = [json.loads(line) for line in f]
    n = a.prompts_per_step * a.group
    return [{"rollout": r["rollout_seconds"], "update": r["update_seconds"],
             "tokens": round(r["completion_length_mean"] * n)} for r in rows[1:]]


def run_torch(model, prompts, a, length, env, policy):
    env = dict(env)
    if policy == "unset":
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([TORCH_PYTHON, GRPO_REF, model, prompts, "--threads", str(a.threads), "--steps",
                          str(a.steps), "--prompts-per-step", str(a.prompts_per_step), "--group", str(a.group),
                          "--length", str(length), "--lr", "1e-4", "--precision", a.precision], check=True,
                         stdout=subprocess.PIPE, env=env, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    return [{"rollout": r["rollout_seconds"], "update": r["update_seconds"], "tokens": r["completion_tokens"]}
            for r in rows[1:]]


def summarize(steps):
    """Medians over measured steps: seconds per part and per step, tokens, tokens/s per part."""
    med = statistics.median
    return {"rollout_seconds": med(s["rollout"] for s in steps), "update_seconds": med(s["update"] for s in steps),
            "step_seconds": med(s["rollout"] + s["update"] for s in steps),
            "completion_tokens": med(s["tokens"] for s in steps),
            "rollout_tokens_per_s": med(s["tokens"] / s["rollout"] for s in steps),
            "update_tokens_per_s": med(s["tokens"] / s["update"] for s in steps),
            "step_tokens_per_s": med(s["tokens"] / (s["rollout"] + s["update"]) for s in steps)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="GRPO steps per run, the first a warm-up")
    ap.add_argument("--rounds", type=int, default=2, help="alternating r1 / PyTorch run pairs")
    ap.add_argument("--prompts-per-step", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--no-rollout-tape", action="store_true",
                    help="r1's update recomputes the whole forward (as the PyTorch reference does)")
    ap.add_argument("--torch-omp-wait-policy", default="best", choices=["best", "PASSIVE", "ACTIVE", "unset"])
    ap.add_argument("--torch-blas-core", choices=["r1", "library"], default="r1")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.steps < 2:
        ap.error("--steps must be >= 2 (the first step is a warm-up)")
    torch_base_env = dict(os.environ)
    torch_core = set_torch_core(R1, a.torch_blas_core, torch_base_env)
    load = [os.getloadavg()[0]]
    policies = ["PASSIVE", "ACTIVE"] if a.torch_omp_wait_policy == "best" else [a.torch_omp_wait_policy]
    r1_steps, torch_by_policy = [], {p: [] for p in policies}
    with tempfile.TemporaryDirectory() as work:
        model = make_model(work)
        prompts = make_prompts(model, a.steps * a.prompts_per_step, work)
        for rnd in range(a.rounds):
            got = run_r1(model, a, work, rnd)
            r1_steps += got
            # PyTorch generates this round's mean r1 completion length for every sequence
            length = max(1, round(statistics.mean(s["tokens"] for s in got) / (a.prompts_per_step * a.group)))
            for policy in policies:
                torch_by_policy[policy] += run_torch(model, prompts, a, length, torch_base_env, policy)
            load.append(os.getloadavg()[0])
    by_policy = {p: summarize(s) for p, s in torch_by_policy.items()}
    policy = min(policies, key=lambda p: by_policy[p]["step_seconds"])
    torch_steps = torch_by_policy[policy]
    r, t = summarize(r1_steps), by_policy[policy]
    # ratios of seconds per completion token (PyTorch / r1): > 1 means r1 is faster
    ratio = {part: r[f"{part}_tokens_per_s"] / t[f"{part}_tokens_per_s"] for part in ("rollout", "update", "step")}
    res = {"precision": a.precision, "rollout_tape": not a.no_rollout_tape, "threads": a.threads, "prompts_per_step": a.prompts_per_step, "group": a.group,
           "max_new_tokens": a.max_new_tokens, "steps_per_run": a.steps, "rounds": a.rounds,
           "torch_omp_wait_policy": policy,
           "torch_step_seconds_by_policy": {p: s["step_seconds"] for p, s in by_policy.items()},
           "torch_blas_core": torch_core,
           "load_average_1min": load,
           "r1": r, "torch": t, "speedup_vs_torch": ratio}
    if a.json:
        print(json.dumps(res, indent=1))
        return
    print(f"GRPO step, small MoE (hidden 256, 4 layers, 16 experts top-4 + 1 shared), P {a.prompts_per_step} x "
          f"G {a.group}, <= {a.max_new_tokens} new tokens, {a.precision}, {a.threads} threads, r1 "
          f"{'without' if a.no_rollout_tape else 'with'} its rollout tape; medians of "
          f"{len(r1_steps)} r1 / {len(torch_steps)} PyTorch steps over {a.rounds} alternating rounds; PyTorch's "
          f"OpenBLAS core: {torch_core}; PyTorch's OMP_WAIT_POLICY: {policy} (median step "
          + ", ".join(f"{p} {s['step_seconds']:.2f} s" for p, s in by_policy.items()) + ")")
    print(f"{'':9}{'rollout s':>10}{'update s':>10}{'step s':>9}{'tokens':>8}{'rollout tok/s':>15}"
          f"{'update tok/s':>14}{'step tok/s':>12}")
    for name, s in (("r1", r), ("PyTorch", t)):
        print(f"{name:9}{s['rollout_seconds']:10.2f}{s['update_seconds']:10.2f}{s['step_seconds']:9.2f}"
              f"{s['completion_tokens']:8.0f}{s['rollout_tokens_per_s']:15.0f}{s['update_tokens_per_s']:14.0f}"
              f"{s['step_tokens_per_s']:12.0f}")
    print(f"ratio    {ratio['step']:.2f}x the PyTorch reference step per completion token "
          f"(rollout {ratio['rollout']:.2f}x, update {ratio['update']:.2f}x)")
    print("load average (1 min) before and after each round: " + ", ".join(f"{x:.2f}" for x in load))


if __name__ == "__main__":
    main()
