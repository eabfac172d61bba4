"""Autograd reference of r1.cpp's training loss (main CE + MTP + sequence-wise balance), AdamW and the bias update.

Everything runs in float64 (or float32, for the f32-vs-f64 diagnostic) on weights read from an HF checkpoint
(dequantized first). Under torch.autocast (bf16 mixed precision: bench/bench_train.py --precision bf16) the matrix
products run in bf16 and return bf16; the results that feed a norm, a softmax, the router or a loss are cast back to
the weights' dtype, as r1 keeps them (the casts are no-ops without autocast). Batched: B rows of T tokens, each row
may hold several packed documents. Shape letters: B batch, T time, C hidden, H heads, R kv_lora_rank, E experts,
K top-k, V vocab. Section numbers refer to shared/spec/deepseek-v3-architecture.md; the loss contract is written
out in tools/ref/README.md ("Training reference") and summarised here:

  attention: query t sees key s iff s <= t and doc[b,s] == doc[b,t]; RoPE position = t - start of t's document.
  L_main = sum_{valid (b,t)} CE(logits[b,t], targets[b,t]) / N_valid            (targets == -1 ignored)
  L_MTP  = lambda * mean CE over (b,i): i+1 < T, doc[b,i+1] == doc[b,i], targets[b,i+1] != -1, against targets[b,i+1];
           MTP input at i: [enorm(Emb(ids[b,i+1])) ; hnorm(h_final[b,i])] -> eh_proj -> block -> shared_head.norm
           -> main lm_head. Row position T-1 has no next id: its embedding half is ZERO (enorm(0) = 0).
  L_bal  = sum over MoE layers (main + MTP) of mean_b alpha * sum_i f_i P_i (f_i from the routed sets, constant).
  L      = L_main + L_MTP + L_bal.

Usage (prints the loss components as JSON):
  /usr/bin/python3 tools/ref/train_ref.py <hf_dir> <batch.json>
"""

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_v3 as ref  # noqa: E402
import safetensors_io  # noqa: E402

BIAS_SUFFIX = "mlp.gate.e_score_correction_bias"


# ----------------------------------------------------------------------------------------------------------------
# Products
# ----------------------------------------------------------------------------------------------------------------

# r1's --precision bf16 exactly (not torch.autocast, whose products return rounded bf16 results): every product of
# linear() rounds both operands to bf16 (nearest, ties to even) and sums in the working dtype, and so do the backward's
# products (dx = dy·w, dw = dyᵀ·x). The router's product stays unrounded (route() calls ref.linear), as in r1.
BF16_PRODUCTS = False


def round_bf16(t):
    """t rounded to bf16 and back to t's dtype (float64 goes through float32 first, as r1 rounds f32 values)."""
    return t.to(torch.float32).to(torch.bfloat16).to(t.dtype)


class _Bf16Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return round_bf16(x) @ round_bf16(w).t()

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        d = round_bf16(dy)
        return d @ round_bf16(w), d.reshape(-1, d.shape[-1]).t() @ round_bf16(x).reshape(-1, x.shape[-1])


def linear(x, w):
    """x @ w.T (x: (..., in), w: (out, in)); with BF16_PRODUCTS as described there."""
    return _Bf16Linear.apply(x, w) if BF16_PRODUCTS else ref.linear(x, w)


def swiglu(x, w_gate, w_up, w_down):
    return linear(torch.nn.functional.silu(linear(x, w_gate)) * linear(x, w_up), w_down)


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------

class TrainModel:
    """cfg; params: HF name -> leaf tensor (requires grad) in checkpoint order; biases: name -> correction bias
    (no grad); has_mtp; mtp_layer (= num_hidden_layers)."""

    def __init__(self, cfg, params, biases, has_mtp):
        self.cfg, self.params, self.biases, self.has_mtp = cfg, params, biases, has_mtp
        self.mtp_layer = cfg.num_hidden_layers

    def is_moe(self, layer):
        if layer == self.mtp_layer:
            return bool(self.cfg.n_routed_experts)  # the MTP block is MoE whenever experts exist (§6.1)
        return self.cfg.is_moe_layer(layer)

    def moe_layers(self):
        n = self.mtp_layer + (1 if self.has_mtp else 0)
        return [l for l in range(n) if self.is_moe(l)]


def load_train_model(model_dir, dtype=torch.float64):
    """-> TrainModel. Weights become `dtype` leaf tensors requiring grad, except the correction biases (kept as
    `dtype` tensors without grad). MTP (layer num_hidden_layers) is used iff num_nextn_predict_layers >= 1 and its
    eh_proj is in the checkpoint; its embed_tokens / shared_head.head copies are dropped (the main tensors are used)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = ref.Config(json.load(f))
    raw = safetensors_io.dequantize_checkpoint(safetensors_io.load_hf_dir(model_dir))
    return model_from_weights(cfg, raw, dtype)


def model_from_weights(cfg, weights, dtype=torch.float64):
    """weights: HF name -> float tensor (any float dtype) -> TrainModel (copies)."""
    n_mtp = cfg.raw.get("num_nextn_predict_layers") or 0
    if n_mtp > 1:
        raise NotImplementedError("num_nextn_predict_layers > 1")
    L = cfg.num_hidden_layers
    has_mtp = n_mtp == 1 and f"model.layers.{L}.eh_proj.weight" in weights
    params, biases = {}, {}
    for name, t in weights.items():
        if name.startswith("model.layers."):
            layer = int(name.split(".")[2])
            if layer > L or (layer == L and not has_mtp):
                continue
            if layer == L and (name.endswith(".embed_tokens.weight") or name.endswith(".shared_head.head.weight")):
                continue  # shared with model.embed_tokens / lm_head (§6.1); the copies are ignored
        if name.endswith(BIAS_SUFFIX):
            biases[name] = t.detach().to(dtype).clone()
        else:
            params[name] = t.detach().to(dtype).clone().requires_grad_(True)
    return TrainModel(cfg, params, biases, has_mtp)


# ----------------------------------------------------------------------------------------------------------------
# Batch: document masks and positions
# ----------------------------------------------------------------------------------------------------------------

class Batch:
    """ids, targets, doc: (B, T) long. Each document must be one contiguous run of a row."""

    def __init__(self, ids, targets, doc, mtp_weight=0.0, balance_alpha=0.0):
        self.ids = torch.as_tensor(ids, dtype=torch.long)
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.doc = torch.as_tensor(doc, dtype=torch.long)
        self.mtp_weight, self.balance_alpha = float(mtp_weight), float(balance_alpha)
        assert self.ids.dim() == 2 and self.ids.shape == self.targets.shape == self.doc.shape
        B, T = self.ids.shape
        for b in range(B):
            seen = set()
            for t in range(T):
                d = int(self.doc[b, t])
                if t > 0 and d != int(self.doc[b, t - 1]):
                    if d in seen:
                        raise ValueError(f"row {b}: document {d} is not contiguous")
                seen.add(d)
        # positions restart at each document start
        pos = torch.zeros(B, T, dtype=torch.long)
        for b in range(B):
            for t in range(1, T):
                pos[b, t] = pos[b, t - 1] + 1 if self.doc[b, t] == self.doc[b, t - 1] else 0
        self.positions = pos
        causal = torch.ones(T, T, dtype=torch.bool).tril()  # [t, s]: s <= t
        self.allowed = causal[None] & (self.doc[:, :, None] == self.doc[:, None, :])  # (B, T, T)

    @staticmethod
    def from_json(path):
        with open(path) as f:
            d = json.load(f)
        return Batch(d["ids"], d["targets"], d["doc"], d.get("mtp_weight", 0.0), d.get("balance_alpha", 0.0))


# ----------------------------------------------------------------------------------------------------------------
# Forward pieces (batched; dtype follows the weights)
# ----------------------------------------------------------------------------------------------------------------

def rope_tables(cfg, positions, dtype):
    """positions (B, T) -> cos, sin (B, T, Dr/2): exactly the fp32 tables of the inference reference, widened."""
    cs = [ref.rope_cos_sin(cfg, positions[b]) for b in range(positions.shape[0])]
    return torch.stack([c for c, _ in cs]).to(dtype), torch.stack([s for _, s in cs]).to(dtype)


def apply_rope(x, cos, sin):
    """x: (B, T, ..., D) interleaved pairs (§4.2); cos, sin: (B, T, D/2)."""
    shape = x.shape
    xr = x.reshape(shape[0], shape[1], -1, shape[-1] // 2, 2)
    x0, x1 = xr[..., 0], xr[..., 1]
    c, s = cos[:, :, None, :], sin[:, :, None, :]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).reshape(shape)


def mla(cfg, W, layer, x, cos, sin, allowed):
    """§3.2 naive MLA. x: (B, T, C) normed; allowed: (B, T, T) bool [query, key] -> (B, T, C)."""
    p = f"model.layers.{layer}.self_attn."
    H, Dn, Dr, Dv, R = (cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim,
                        cfg.kv_lora_rank)
    B, T, _ = x.shape
    eps = cfg.rms_norm_eps
    if cfg.q_lora_rank:
        q = linear(ref.rms_norm(linear(x, W[p + "q_a_proj.weight"]).to(x.dtype), W[p + "q_a_layernorm.weight"],
                                eps), W[p + "q_b_proj.weight"])
    else:
        q = linear(x, W[p + "q_proj.weight"])
    q = q.view(B, T, H, Dn + Dr)
    q_nope, q_pe = q[..., :Dn], apply_rope(q[..., Dn:], cos, sin)
    kv = linear(x, W[p + "kv_a_proj_with_mqa.weight"]).to(x.dtype)  # (B, T, R + Dr)
    c_kv = ref.rms_norm(kv[..., :R], W[p + "kv_a_layernorm.weight"], eps)
    k_pe = apply_rope(kv[..., R:], cos, sin)  # (B, T, Dr), shared by all heads
    kvb = linear(c_kv, W[p + "kv_b_proj.weight"]).view(B, T, H, Dn + Dv)
    k_nope, v = kvb[..., :Dn], kvb[..., Dn:]
    scores = (torch.einsum("bthd,bshd->bhts", q_nope, k_nope).to(x.dtype)
              + torch.einsum("bthd,bsd->bhts", q_pe, k_pe).to(x.dtype)) * ref.softmax_scale(cfg)  # (B, H, T, T)
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    P = torch.softmax(scores, dim=-1)
    o = torch.einsum("bhts,bshd->bthd", P, v).reshape(B, T, H * Dv)
    return linear(o, W[p + "o_proj.weight"])


def route(cfg, W, bias, layer, u):
    """§5.2 router on u: (N, C). -> idx (N, K) (selection: constant, from s + bias with the group limit),
    w (N, K) (from the unbiased s; differentiable), s (N, E) sigmoid scores, margin (float: the smallest gap that
    a perturbation would have to close to change any selection in this call)."""
    p = f"model.layers.{layer}.mlp.gate."
    E, K, G, KG = cfg.n_routed_experts, cfg.num_experts_per_tok, cfg.n_group, cfg.topk_group
    N = u.shape[0]
    s = torch.sigmoid(ref.linear(u, W[p + "weight"]).to(u.dtype))
    margin = math.inf
    with torch.no_grad():
        c = s.detach() + bias[p + "e_score_correction_bias"][None, :]
        gscore = c.view(N, G, E // G).topk(2, dim=-1).values.sum(-1)  # (N, G)
        gs = gscore.sort(dim=-1, descending=True).values
        if KG < G:
            margin = min(margin, float((gs[:, KG - 1] - gs[:, KG]).min()))
        keep = gscore.topk(KG, dim=-1).indices
        gmask = torch.zeros(N, G, dtype=torch.bool)
        gmask.scatter_(1, keep, True)
        c = c.masked_fill(~gmask[:, :, None].expand(N, G, E // G).reshape(N, E), float("-inf"))
        cs = c.sort(dim=-1, descending=True).values
        if K < cs.shape[1]:
            gap = cs[:, K - 1] - cs[:, K]
            gap = gap[torch.isfinite(gap)]
            if gap.numel():
                margin = min(margin, float(gap.min()))
        idx = c.topk(K, dim=-1).indices
    w = s.gather(1, idx)
    if cfg.norm_topk_prob:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    return idx, w * cfg.routed_scaling_factor, s, margin


def moe(cfg, W, bias, layer, u, alpha, stats):
    """§5.3 MoE on u: (B, T, C) -> (out (B, T, C), balance loss (scalar): mean_b alpha * sum_i f_i P_i).
    stats[layer] gets {"load": (E,) routed-token counts over all B*T tokens, "margin": float}."""
    p = f"model.layers.{layer}.mlp."
    B, T, C = u.shape
    E, K = cfg.n_routed_experts, cfg.num_experts_per_tok
    uf = u.reshape(B * T, C)
    idx, w, s, margin = route(cfg, W, bias, layer, uf)
    out = torch.zeros_like(uf)
    for e in range(E):
        rows, slot = (idx == e).nonzero(as_tuple=True)
        if rows.numel() == 0:
            continue  # unused expert: no contribution, zero gradient
        q = f"{p}experts.{e}."
        y = swiglu(uf[rows], W[q + "gate_proj.weight"], W[q + "up_proj.weight"], W[q + "down_proj.weight"])
        out = out.index_add(0, rows, w[rows, slot][:, None] * y)
    if cfg.n_shared_experts:
        q = p + "shared_experts."
        out = out + swiglu(uf, W[q + "gate_proj.weight"], W[q + "up_proj.weight"], W[q + "down_proj.weight"])
    # sequence-wise balance loss (§5.6) over each row's T tokens, f from the actually routed sets
    sel = torch.zeros(B * T, E, dtype=s.dtype)
    sel.scatter_(1, idx, 1.0)
    f = sel.view(B, T, E).sum(1) * (E / (K * T))  # (B, E), constant
    Pm = (s / s.sum(-1, keepdim=True)).view(B, T, E).mean(1)  # (B, E)
    bal = alpha * (f * Pm).sum(-1).mean()
    stats[layer] = {"load": sel.sum(0).to(torch.long), "margin": margin}
    return out.view(B, T, C), bal


def block(model, layer, h, cos, sin, allowed, alpha, stats):
    """One decoder block (main layer or the MTP block). -> (h, balance loss of this block)."""
    cfg, W = model.cfg, model.params
    p = f"model.layers.{layer}."
    eps = cfg.rms_norm_eps
    h = h + mla(cfg, W, layer, ref.rms_norm(h, W[p + "input_layernorm.weight"], eps), cos, sin, allowed)
    u = ref.rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
    if model.is_moe(layer):
        y, bal = moe(cfg, W, model.biases, layer, u, alpha, stats)
    else:
        y = swiglu(u, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"], W[p + "mlp.down_proj.weight"])
        bal = h.new_zeros(())
    return h + y, bal


def masked_ce(logits, targets, valid):
    """Mean natural-log CE over valid entries (0 when none). logits (..., V), targets (...) long, valid (...) bool."""
    n = int(valid.sum())
    if n == 0:
        return logits.new_zeros(())
    lp = torch.log_softmax(logits[valid], dim=-1)
    return -lp.gather(1, targets[valid][:, None]).sum() / n


def losses(model, batch, keep=None):
    """Forward of the whole training loss. -> dict of scalar tensors {loss, loss_main, loss_mtp, loss_balance},
    plus "stats": {moe layer: {"load", "margin"}}; keep (dict) receives logits / mtp_logits when given."""
    cfg, W = model.cfg, model.params
    dtype = W["model.embed_tokens.weight"].dtype
    ids, targets, doc = batch.ids, batch.targets, batch.doc
    if ids.min() < 0 or ids.max() >= cfg.vocab_size or targets.max() >= cfg.vocab_size or targets.min() < -1:
        raise ValueError("token id out of range")
    B, T = ids.shape
    eps = cfg.rms_norm_eps
    cos, sin = rope_tables(cfg, batch.positions, dtype)
    stats = {}
    bal = W["model.embed_tokens.weight"].new_zeros(())
    h = W["model.embed_tokens.weight"][ids]  # (B, T, C)
    for l in range(cfg.num_hidden_layers):
        h, b_l = block(model, l, h, cos, sin, batch.allowed, batch.balance_alpha, stats)
        bal = bal + b_l
    h_final = ref.rms_norm(h, W["model.norm.weight"], eps)
    logits = linear(h_final, W["lm_head.weight"]).to(dtype)  # (B, T, V)
    loss_main = masked_ce(logits, targets, targets != -1)
    loss_mtp = logits.new_zeros(())
    if model.has_mtp:
        L = model.mtp_layer
        p = f"model.layers.{L}."
        e = ref.rms_norm(W["model.embed_tokens.weight"][ids[:, 1:]], W[p + "enorm.weight"], eps)  # (B, T-1, C)
        e = torch.cat([e, e.new_zeros(B, 1, e.shape[-1])], dim=1)  # position T-1: no next id -> zero
        hh = ref.rms_norm(h_final, W[p + "hnorm.weight"], eps)
        x = linear(torch.cat([e, hh], dim=-1), W[p + "eh_proj.weight"]).to(dtype)  # embedding first (§6.1)
        x, b_l = block(model, L, x, cos, sin, batch.allowed, batch.balance_alpha, stats)
        bal = bal + b_l
        mtp_logits = linear(ref.rms_norm(x, W[p + "shared_head.norm.weight"], eps), W["lm_head.weight"]).to(dtype)
        # position i predicts targets[b, i+1] when i+1 is in the same document and that target is not ignored
        tgt = torch.full_like(targets, -1)
        tgt[:, :-1] = targets[:, 1:]
        same = torch.zeros_like(doc, dtype=torch.bool)
        same[:, :-1] = doc[:, 1:] == doc[:, :-1]
        valid = same & (tgt != -1)
        loss_mtp = batch.mtp_weight * masked_ce(mtp_logits, tgt.clamp(min=0), valid)
        if keep is not None:
            keep["mtp_logits"], keep["mtp_valid"] = mtp_logits, valid
    if keep is not None:
        keep["logits"] = logits
    total = loss_main + loss_mtp + bal
    return {"loss": total, "loss_main": loss_main, "loss_mtp": loss_mtp, "loss_balance": bal, "stats": stats}


def loss_and_grads(model, batch):
    """-> (components: dict name -> float, grads: dict HF name -> tensor (same dtype as the weights), stats).
    Every parameter gets a gradient tensor (zeros when unused, e.g. an expert no token was routed to)."""
    for t in model.params.values():
        t.grad = None
    out = losses(model, batch)
    out["loss"].backward()
    grads = {n: (t.grad.detach().clone() if t.grad is not None else torch.zeros_like(t))
             for n, t in model.params.items()}
    comps = {k: float(v) for k, v in out.items() if k != "stats"}
    return comps, grads, out["stats"]


# ----------------------------------------------------------------------------------------------------------------
# AdamW + bias update
# ----------------------------------------------------------------------------------------------------------------

def adamw_train(cfg, weights, batch, steps, lr, weight_decay, clip, bias_update_speed,
                beta1=0.9, beta2=0.95, eps=1e-8, dtype=torch.float64):
    """`steps` optimizer steps on the same batch (or, when `batch` is a list, on batch[step - 1]). weights: HF name -> float32 master tensor (correction biases
    included). Per step: forward/backward in `dtype` on the current f32 weights; global grad norm (pre-clip) over
    every parameter; clip to `clip`; AdamW (bias-corrected, decoupled decay for 2-D tensors only) in float64,
    master weights rounded to f32; then per MoE layer b_i += gamma * sign(mean_load - load_i) (f32).
    -> {"losses": [loss before each step], "grad_norms": [...], "components": [...], "min_margin": float,
        "weights": final f32 weights (HF name -> tensor, unused MTP copies left unchanged)}."""
    master = {n: t.detach().to(torch.float32).clone() for n, t in weights.items()}
    m, v = {}, {}
    res = {"losses": [], "grad_norms": [], "components": [], "min_margin": math.inf}
    for step in range(1, steps + 1):
        model = model_from_weights(cfg, master, dtype)
        comps, grads, stats = loss_and_grads(model, batch[step - 1] if isinstance(batch, list) else batch)
        norm = math.sqrt(sum(float((g.to(torch.float64) ** 2).sum()) for g in grads.values()))
        res["losses"].append(comps["loss"])
        res["components"].append(comps)
        res["grad_norms"].append(norm)
        res["min_margin"] = min([res["min_margin"]] + [s["margin"] for s in stats.values()])
        scale = clip / norm if norm > clip else 1.0
        for n, g in grads.items():
            g = g.to(torch.float64) * scale
            p = master[n].to(torch.float64)
            if n not in m:
                m[n], v[n] = torch.zeros_like(p), torch.zeros_like(p)
            m[n] = beta1 * m[n] + (1 - beta1) * g
            v[n] = beta2 * v[n] + (1 - beta2) * g * g
            mhat = m[n] / (1 - beta1 ** step)
            vhat = v[n] / (1 - beta2 ** step)
            upd = mhat / (vhat.sqrt() + eps)
            if p.dim() == 2:  # weight matrices, embeddings, lm_head; not norms (1-D)
                upd = upd + weight_decay * p
            master[n] = (p - lr * upd).to(torch.float32)
        for layer, s in stats.items():
            bn = f"model.layers.{layer}.{BIAS_SUFFIX}"
            load = s["load"].to(torch.float64)
            mean = load.sum() / load.numel()
            master[bn] = (master[bn].to(torch.float64) + bias_update_speed * torch.sign(mean - load)).to(torch.float32)
    res["weights"] = master
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("batch_json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_train_model(args.model_dir)
    comps, grads, _ = loss_and_grads(model, Batch.from_json(args.batch_json))
    comps["grad_norm"] = math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
    print(json.dumps(comps))


if __name__ == "__main__":
    main()
