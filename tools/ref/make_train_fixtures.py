"""Write the training-reference fixtures tests/fixtures/train-<variant>/ (loss contract: tools/ref/README.md).

  /usr/bin/python3 tools/ref/make_train_fixtures.py --out tests/fixtures [--only VARIANT ...] [--no-regen-check]

Per variant: config.json, model.safetensors (F32), batch.json, expected.json (loss components and 5 AdamW steps)
and grads.safetensors (F32 gradient of the total loss for every trained parameter, HF names). Gradients are
computed by train_ref.py in float64 and rounded to f32 on write. Variants marked bf16 also get grads_bf16.safetensors
and expected.json's "bf16": the same with r1's bf16 products (--precision bf16: train_ref.BF16_PRODUCTS).

Self-checks (a failing one aborts the run):
  * main logits of every document of the batch = the inference reference (deepseek_v3.forward_naive, f32) run on
    that document alone (document mask + restarting positions), max |diff| <= 1e-4;
  * central finite differences in float64 of several entries of q_a_proj/q_proj, kv_b_proj, a routed expert, the
    router gate, eh_proj, RMSNorm weights, embed_tokens and lm_head against autograd (relative error < 1e-6);
  * every routing decision (initial forward and all AdamW steps, and the forward with bf16 products) has a margin
    >= 1e-4, so an f32 engine routes the same tokens to the same experts; the correction bias / group limit change
    some selections;
  * the same computation in float32 gives gradients within 1e-5 of float64 (per-tensor relative norm);
  * regenerating into a temporary directory gives byte-identical files.
"""

import argparse
import copy
import filecmp
import json
import math
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_v3 as ref  # noqa: E402
import make_fixtures as mf  # noqa: E402
import safetensors_io as st  # noqa: E402
import train_ref as tr  # noqa: E402

FORMAT_VERSION = 1
B, T = 2, 12
ADAM = {"lr": 1e-2, "weight_decay": 0.1, "clip": 1.0, "bias_update_speed": 0.01, "steps": 5,
        "beta1": 0.9, "beta2": 0.95, "eps": 1e-8}
MIN_ROUTING_MARGIN = 1e-4

COMMON = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "vocab_size": 72,
    "hidden_size": 32,
    "intermediate_size": 48,
    "moe_intermediate_size": 16,
    "num_hidden_layers": 3,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "q_lora_rank": 24,
    "kv_lora_rank": 16,
    "qk_nope_head_dim": 8,
    "qk_rope_head_dim": 8,
    "v_head_dim": 8,
    "n_routed_experts": 8,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "n_group": 4,
    "topk_group": 2,
    "routed_scaling_factor": 2.5,
    "scoring_func": "sigmoid",
    "topk_method": "noaux_tc",
    "norm_topk_prob": True,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000,
    # mscale != mscale_all_dim: cos/sin carry attention_factor 0.987825, so the RoPE backward is not a pure rotation
    "rope_scaling": {"type": "yarn", "factor": 4, "original_max_position_embeddings": 8, "beta_fast": 32,
                     "beta_slow": 1, "mscale": 0.9, "mscale_all_dim": 1.0},
    "max_position_embeddings": 32,
    "attention_bias": False,
    "tie_word_embeddings": False,
    "num_nextn_predict_layers": 1,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "torch_dtype": "float32",
}

MOE_KEYS = ["moe_intermediate_size", "n_shared_experts", "num_experts_per_tok", "n_group", "topk_group",
            "routed_scaling_factor", "scoring_func", "topk_method", "norm_topk_prob", "first_k_dense_replace",
            "moe_layer_freq"]

# name, seed, config overrides, config keys removed, mtp_weight (lambda), balance_alpha, ADAM overrides, bf16
VARIANTS = [
    # no bf16 data: with bf16 products one routing decision is a near-tie (margin 8e-5)
    ("train-qlora-mtp", 2001, {}, [], 0.3, 0.01, {}, False),
    # the same model and batch shapes from another seed, for the bf16 products
    ("train-qlora-mtp-bf16", 2005, {}, [], 0.3, 0.01, {}, True),
    ("train-direct-q", 2002,
     {"vocab_size": 64, "num_attention_heads": 2, "num_key_value_heads": 2, "q_lora_rank": None,
      "num_hidden_layers": 2, "rope_scaling": None, "norm_topk_prob": False, "n_group": 1, "topk_group": 1,
      "n_shared_experts": 0, "num_nextn_predict_layers": 0},
     # clip 3: step 1 is clipped (norm 3.6), the later steps are not -> both branches of the clip
     [], 0.0, 0.0, {"clip": 3.0}, True),
    # all layers dense (n_routed_experts null, MoE fields absent); the MTP block is then a dense block too
    ("train-dense", 2003,
     {"vocab_size": 96, "num_attention_heads": 3, "num_key_value_heads": 3, "q_lora_rank": 16,
      "num_hidden_layers": 2, "n_routed_experts": None,
      "rope_scaling": {"type": "yarn", "factor": 4, "original_max_position_embeddings": 8, "beta_fast": 32,
                       "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}},
     MOE_KEYS, 0.5, 0.01, {}, True),
]


# ----------------------------------------------------------------------------------------------------------------
# Checkpoint and batch
# ----------------------------------------------------------------------------------------------------------------

def train_specs(cfg, with_mtp):
    """(name, shape, kind) of every checkpoint tensor; the MTP block is MoE iff experts exist."""
    V, C = cfg.vocab_size, cfg.hidden_size
    s = [("model.embed_tokens.weight", [V, C], "embed")]
    for l in range(cfg.num_hidden_layers):
        s += mf.layer_specs(cfg, l, cfg.is_moe_layer(l))
    s += [("model.norm.weight", [C], "norm"), ("lm_head.weight", [V, C], "head")]
    if with_mtp:
        p = f"model.layers.{cfg.num_hidden_layers}."
        s += [(p + "embed_tokens.weight", [V, C], "copy:model.embed_tokens.weight"),
              (p + "enorm.weight", [C], "norm"),
              (p + "hnorm.weight", [C], "norm"),
              (p + "eh_proj.weight", [C, 2 * C], "linear")]
        s += mf.layer_specs(cfg, cfg.num_hidden_layers, bool(cfg.n_routed_experts))
        s += [(p + "shared_head.norm.weight", [C], "norm"),
              (p + "shared_head.head.weight", [V, C], "copy:lm_head.weight")]
    return s


def init_weights(specs, gen):
    """Matrices, router, embedding, head N(0, 0.1^2); norms 1 + N(0, 0.1^2); correction bias N(0, 0.05^2)."""
    out = {}
    for name, shape, kind in specs:
        if kind.startswith("copy:"):
            out[name] = out[kind[5:]].clone()
        elif kind == "norm":
            out[name] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif kind == "bias":
            out[name] = 0.05 * torch.randn(shape, generator=gen)
        else:
            out[name] = 0.1 * torch.randn(shape, generator=gen)
    return out


def make_batch(cfg, gen):
    """Row 0: two packed documents (tokens 0..4 and 5..11); row 1: one document whose first 3 targets are ignored.
    targets[b,t] = ids[b,t+1] inside a document, -1 at a document's last token, and at t = T-1 (last document of
    the row, continuing past the window) a random next id."""
    ids = torch.randint(2, cfg.vocab_size, (B, T), generator=gen)
    nxt = torch.randint(2, cfg.vocab_size, (B,), generator=gen)
    doc = torch.tensor([[0] * 5 + [1] * 7, [0] * T])
    targets = torch.full((B, T), -1, dtype=torch.long)
    for b in range(B):
        for t in range(T):
            if t + 1 < T:
                targets[b, t] = ids[b, t + 1] if doc[b, t + 1] == doc[b, t] else -1
            else:
                targets[b, t] = nxt[b]
    targets[1, :3] = -1
    return ids.tolist(), targets.tolist(), doc.tolist()


def write_json(path, d, depth=0):
    """JSON with one key per line down to nested dicts; lists stay on one line."""
    def fmt(v, ind):
        if isinstance(v, dict):
            pad = "  " * (ind + 1)
            items = [f"{pad}{json.dumps(k)}: {fmt(x, ind + 1)}" for k, x in v.items()]
            return "{\n" + ",\n".join(items) + "\n" + "  " * ind + "}"
        return json.dumps(v)
    with open(path, "w") as f:
        f.write(fmt(d, depth) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------------------------

def check_documents_vs_inference(cfg, W32, model, batch):
    """Logits of each document of the batch = deepseek_v3.forward_naive on that document alone."""
    keep = {}
    with torch.no_grad():
        tr.losses(model, batch, keep)
    worst = 0.0
    for b in range(B):
        docs = []
        for t in range(T):
            if t == 0 or batch.doc[b, t] != batch.doc[b, t - 1]:
                docs.append([t, t + 1])
            else:
                docs[-1][1] = t + 1
        for s, e in docs:
            with torch.no_grad():
                want = ref.forward_naive(cfg, W32, batch.ids[b, s:e].tolist()).to(torch.float64)
            worst = max(worst, float((keep["logits"][b, s:e] - want).abs().max()))
    assert worst <= 1e-4, f"document logits differ from the inference reference by {worst}"
    return worst


def fd_targets(model, grads):
    """Names of the tensors to finite-difference (those present in this model)."""
    cfg = model.cfg
    names = ["model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"]
    for l in range(cfg.num_hidden_layers + (1 if model.has_mtp else 0)):
        a = f"model.layers.{l}.self_attn."
        names += [a + ("q_a_proj.weight" if cfg.q_lora_rank else "q_proj.weight"), a + "kv_b_proj.weight",
                  a + "kv_a_layernorm.weight"]
        if model.is_moe(l):
            m = f"model.layers.{l}.mlp."
            names.append(m + "gate.weight")
            # the routed expert with the largest gradient (i.e. a used one)
            e = max(range(cfg.n_routed_experts), key=lambda i: float(grads[f"{m}experts.{i}.down_proj.weight"].norm()))
            names += [f"{m}experts.{e}.gate_proj.weight", f"{m}experts.{e}.down_proj.weight"]
        else:
            names.append(f"model.layers.{l}.mlp.up_proj.weight")
    if model.has_mtp:
        p = f"model.layers.{model.mtp_layer}."
        names += [p + "eh_proj.weight", p + "enorm.weight", p + "hnorm.weight", p + "shared_head.norm.weight"]
    return [n for n in names if n in model.params]


def check_finite_differences(model, batch, grads, gen, h=1e-5):
    """Central differences of the float64 total loss at the largest-|grad| entry and 2 random entries with
    |grad| >= 1e-2 * max of each target tensor. -> (worst relative error, number of entries)."""
    worst, n = 0.0, 0
    for name in fd_targets(model, grads):
        g = grads[name].reshape(-1)
        gmax = float(g.abs().max())
        assert gmax > 0, f"{name}: zero gradient"
        cand = (g.abs() >= 1e-2 * gmax).nonzero().reshape(-1)
        picks = [int(g.abs().argmax())] + [int(cand[i]) for i in torch.randint(0, len(cand), (2,), generator=gen)]
        p = model.params[name]
        for i in picks:
            with torch.no_grad():
                flat = p.view(-1)
                old = float(flat[i])
                flat[i] = old + h
                lp = float(tr.losses(model, batch)["loss"])
                flat[i] = old - h
                lm = float(tr.losses(model, batch)["loss"])
                flat[i] = old
            fd = (lp - lm) / (2 * h)
            err = abs(fd - float(g[i])) / abs(float(g[i]))
            worst = max(worst, err)
            n += 1
            assert err < 1e-6, f"finite difference: {name}[{i}] fd {fd} autograd {float(g[i])} rel {err}"
    return worst, n


def selection_changes(model, batch):
    """How many token-layer selections the correction bias and the group limit change (initial weights)."""
    changed = {"bias": 0, "group_limit": 0}
    orig = tr.route

    def rec(cfg, W, bias, layer, u):
        out = orig(cfg, W, bias, layer, u)
        idx = out[0]
        with torch.no_grad():
            s = out[2]
            c = s + bias[f"model.layers.{layer}.mlp.gate.e_score_correction_bias"]
            no_group = c.topk(cfg.num_experts_per_tok, -1).indices
            no_bias = s.topk(cfg.num_experts_per_tok, -1).indices
        for t in range(u.shape[0]):
            changed["group_limit"] += set(idx[t].tolist()) != set(no_group[t].tolist())
            changed["bias"] += set(no_group[t].tolist()) != set(no_bias[t].tolist())
        return out

    tr.route = rec
    try:
        with torch.no_grad():
            tr.losses(model, batch)
    finally:
        tr.route = orig
    return changed


def rel(a, b):
    nb = float(b.norm())
    return float((a - b).norm()) / nb if nb > 0 else float((a - b).norm())


# ----------------------------------------------------------------------------------------------------------------
# One variant
# ----------------------------------------------------------------------------------------------------------------

def make_variant(out_dir, name, seed, overrides, removed, lam, alpha, adam_overrides, bf16, checks=True):
    vdir = os.path.join(out_dir, name)
    os.makedirs(vdir, exist_ok=True)
    cfg_dict = copy.deepcopy(COMMON)
    cfg_dict.update(copy.deepcopy(overrides))
    for k in removed:
        cfg_dict.pop(k, None)
    cfg = ref.Config(cfg_dict)
    adam = dict(ADAM, **adam_overrides)
    with_mtp = (cfg_dict.get("num_nextn_predict_layers") or 0) == 1
    gen = torch.Generator().manual_seed(seed)
    specs = train_specs(cfg, with_mtp)
    weights = init_weights(specs, gen)
    ids, targets, doc = make_batch(cfg, gen)
    mf.write_checkpoint(vdir, cfg_dict, specs, weights, "f32", 1)
    write_json(os.path.join(vdir, "batch.json"),
               {"ids": ids, "targets": targets, "doc": doc, "mtp_weight": lam, "balance_alpha": alpha})

    # everything below starts from the files as read back
    model = tr.load_train_model(vdir)
    batch = tr.Batch.from_json(os.path.join(vdir, "batch.json"))
    W32 = ref.load_model(vdir)[1]
    raw32 = st.dequantize_checkpoint(st.load_hf_dir(vdir))
    for n, _, _ in specs:
        assert torch.equal(raw32[n], weights[n]), n
    comps, grads, stats = tr.loss_and_grads(model, batch)
    gnorm = math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
    st.write_safetensors(os.path.join(vdir, "grads.safetensors"),
                         [(n, "F32", g.to(torch.float32)) for n, g in grads.items()])
    if bf16:
        tr.BF16_PRODUCTS = True
        try:
            comps16, grads16, stats16 = tr.loss_and_grads(model, batch)
        finally:
            tr.BF16_PRODUCTS = False
        st.write_safetensors(os.path.join(vdir, "grads_bf16.safetensors"),
                             [(n, "F32", g.to(torch.float32)) for n, g in grads16.items()])
    run = tr.adamw_train(cfg, raw32, batch, adam["steps"], adam["lr"], adam["weight_decay"], adam["clip"],
                         adam["bias_update_speed"], adam["beta1"], adam["beta2"], adam["eps"])
    assert run["losses"][0] == comps["loss"]
    moe_layers = model.moe_layers()
    expected = {
        "format_version": FORMAT_VERSION,
        "variant": name,
        "loss": comps["loss"],
        "loss_main": comps["loss_main"],
        "loss_mtp": comps["loss_mtp"],
        "loss_balance": comps["loss_balance"],
        "grad_norm": gnorm,
        "moe_layers": moe_layers,
        "expert_load": {f"model.layers.{l}.{tr.BIAS_SUFFIX}": stats[l]["load"].tolist() for l in moe_layers},
        "adam": dict(adam, losses=run["losses"], grad_norms=run["grad_norms"],
                     final_correction_bias={n: [float(x) for x in run["weights"][n]]
                                            for n in (f"model.layers.{l}.{tr.BIAS_SUFFIX}" for l in moe_layers)}),
    }
    if bf16:
        expected["bf16"] = {k: comps16[k] for k in ("loss", "loss_main", "loss_mtp", "loss_balance")}
    write_json(os.path.join(vdir, "expected.json"), expected)

    if not checks:
        return
    size = sum(os.path.getsize(os.path.join(vdir, f)) for f in os.listdir(vdir))
    print(f"  loss {comps['loss']:.6f} = main {comps['loss_main']:.6f} + mtp {comps['loss_mtp']:.6f} "
          f"+ balance {comps['loss_balance']:.6f}; grad norm {gnorm:.4f}; {len(grads)} tensors; {size} bytes")
    print("  adam losses " + " ".join(f"{x:.6f}" for x in run["losses"])
          + " | grad norms " + " ".join(f"{x:.4f}" for x in run["grad_norms"]))
    worst_doc = check_documents_vs_inference(cfg, W32, model, batch)
    fd_worst, fd_n = check_finite_differences(model, batch, grads, torch.Generator().manual_seed(seed + 1))
    print(f"  documents vs inference reference max|dlogit| {worst_doc:.2e}; finite differences: {fd_n} entries, "
          f"worst relative error {fd_worst:.2e}")
    if bf16:
        print(f"  bf16 products: loss {comps16['loss']:.6f}; per-tensor gradient difference from f64 up to "
              f"{max(rel(grads16[n], grads[n]) for n in grads):.1e}")
    if moe_layers:
        margin = min(run["min_margin"], min(s["margin"] for s in stats.values()),
                     min(s["margin"] for s in stats16.values()) if bf16 else math.inf)
        changed = selection_changes(model, batch)
        print(f"  routing: min selection margin {margin:.2e}; selections changed by bias / group limit: "
              f"{changed['bias']} / {changed['group_limit']}; loads {expected['expert_load']}")
        assert margin >= MIN_ROUTING_MARGIN, "near-tie in routing; pick another seed"
        assert changed["bias"] > 0, "correction bias never changes a selection"
        assert changed["group_limit"] > 0 or cfg.topk_group >= cfg.n_group, "group limit never changes a selection"
        assert any(a != b for a, b in zip(run["weights"][f"model.layers.{moe_layers[0]}.{tr.BIAS_SUFFIX}"],
                                          raw32[f"model.layers.{moe_layers[0]}.{tr.BIAS_SUFFIX}"]))
    # the same computation in float32: how far an f32 engine is expected to be from these fixtures
    m32 = tr.load_train_model(vdir, torch.float32)
    c32, g32, _ = tr.loss_and_grads(m32, batch)
    worst32 = max(rel(g32[n].to(torch.float64), grads[n]) for n in grads)
    run32 = tr.adamw_train(cfg, raw32, batch, adam["steps"], adam["lr"], adam["weight_decay"], adam["clip"],
                           adam["bias_update_speed"], adam["beta1"], adam["beta2"], adam["eps"], dtype=torch.float32)
    dl = max(abs(a - b) / abs(b) for a, b in zip(run32["losses"], run["losses"]))
    print(f"  float32 vs float64: loss rel {abs(c32['loss'] - comps['loss']) / comps['loss']:.1e}, worst per-tensor "
          f"grad rel {worst32:.1e}, adam losses rel {dl:.1e}")
    assert worst32 < 1e-5, "float32 gradients far from float64"
    assert run["grad_norms"][0] > adam["clip"], "clipping never active"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--only", nargs="*", help="variant names (default: all)")
    ap.add_argument("--no-regen-check", action="store_true", help="skip the byte-identical regeneration check")
    args = ap.parse_args()
    torch.set_num_threads(1)  # fixed reduction order -> byte-identical regeneration
    for name, seed, overrides, removed, lam, alpha, adam_overrides, bf16 in VARIANTS:
        if args.only and name not in args.only:
            continue
        print(f"{name}:")
        make_variant(args.out, name, seed, overrides, removed, lam, alpha, adam_overrides, bf16)
        if not args.no_regen_check:
            with tempfile.TemporaryDirectory() as tmp:
                make_variant(tmp, name, seed, overrides, removed, lam, alpha, adam_overrides, bf16, checks=False)
                files = sorted(os.listdir(os.path.join(args.out, name)))
                assert files == sorted(os.listdir(os.path.join(tmp, name))), "file lists differ"
                match, mismatch, errors = filecmp.cmpfiles(os.path.join(args.out, name), os.path.join(tmp, name),
                                                           files, shallow=False)
                assert not mismatch and not errors, f"regeneration differs: {mismatch} {errors}"
            print(f"  regeneration byte-identical ({len(files)} files)")


if __name__ == "__main__":
    main()
