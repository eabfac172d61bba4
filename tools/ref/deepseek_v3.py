"""Float32 PyTorch reference of the DeepSeek-V3 / R1 architecture (main model; MTP layer ignored).

Written from shared/spec/deepseek-v3-architecture.md (section numbers below refer to it). Everything runs in
float32 on dequantized weights, one sequence at a time (no batch dimension). Shape letters: T time, C hidden,
H heads, R kv_lora_rank, E experts, K top-k, V vocab.

Two attention paths, used as each other's check:
  * naive (§3.2): full causal forward, per-head keys k = [k_nope; k_pe] and values from kv_b_proj.
  * absorbed (§3.3): token-by-token decoding with a per-layer latent cache (normed c_kv, rotated k_pe);
    W_UK is applied to the query and W_UV to the attention-weighted latent.

Usage:
  /usr/bin/python3 tools/ref/deepseek_v3.py <hf_dir> --ids <ids.txt> [--greedy N --prompt-len P]
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


# ----------------------------------------------------------------------------------------------------------------
# Config and weights
# ----------------------------------------------------------------------------------------------------------------

class Config:
    """The HF config.json fields the forward needs (§1.1), with derived sizes."""

    def __init__(self, d):
        self.raw = d
        self.vocab_size = d["vocab_size"]
        self.hidden_size = d["hidden_size"]
        self.intermediate_size = d["intermediate_size"]
        self.moe_intermediate_size = d.get("moe_intermediate_size")  # absent in all-dense configs
        self.num_hidden_layers = d["num_hidden_layers"]
        self.first_k_dense_replace = d.get("first_k_dense_replace", 0)
        self.moe_layer_freq = d.get("moe_layer_freq", 1)
        self.num_attention_heads = d["num_attention_heads"]
        self.q_lora_rank = d.get("q_lora_rank")  # None/0 -> single q_proj
        self.kv_lora_rank = d["kv_lora_rank"]
        self.qk_nope_head_dim = d["qk_nope_head_dim"]
        self.qk_rope_head_dim = d["qk_rope_head_dim"]
        self.v_head_dim = d["v_head_dim"]
        self.qk_head_dim = self.qk_nope_head_dim + self.qk_rope_head_dim
        self.n_routed_experts = d.get("n_routed_experts")
        self.n_shared_experts = d.get("n_shared_experts") or 0
        self.num_experts_per_tok = d.get("num_experts_per_tok")
        self.n_group = d.get("n_group") or 1
        self.topk_group = d.get("topk_group") or 1
        self.routed_scaling_factor = d.get("routed_scaling_factor", 1.0)
        self.norm_topk_prob = d.get("norm_topk_prob", False)
        self.scoring_func = d.get("scoring_func", "sigmoid")
        self.topk_method = d.get("topk_method", "noaux_tc")
        self.rms_norm_eps = d.get("rms_norm_eps", 1e-6)
        self.rope_theta = d.get("rope_theta", 10000.0)
        self.rope_scaling = d.get("rope_scaling")
        self.max_position_embeddings = d["max_position_embeddings"]
        if d.get("tie_word_embeddings", False):
            raise NotImplementedError("tie_word_embeddings=true is not a DeepSeek-V3 configuration")
        if self.scoring_func != "sigmoid" or self.topk_method != "noaux_tc":
            raise NotImplementedError("only scoring_func=sigmoid, topk_method=noaux_tc (V3) are implemented")
        if d.get("hidden_act", "silu") != "silu":
            raise NotImplementedError("only hidden_act=silu is implemented")

    def is_moe_layer(self, layer):
        # = HF DeepseekV3DecoderLayer: MoE iff experts exist, layer >= first_k_dense_replace, layer % freq == 0
        # (n_routed_experts null, absent or 0 -> every layer dense)
        return (bool(self.n_routed_experts) and layer >= self.first_k_dense_replace
                and layer % self.moe_layer_freq == 0)


def load_model(model_dir):
    """-> (Config, weights: name -> float32 tensor). Reads single-file or sharded checkpoints, dequantizes FP8
    (§7.2) and drops tensors of layers >= num_hidden_layers (the MTP module, §6)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = Config(json.load(f))
    weights = safetensors_io.dequantize_checkpoint(safetensors_io.load_hf_dir(model_dir))
    main = {}
    for name, t in weights.items():
        if name.startswith("model.layers."):
            if int(name.split(".")[2]) >= cfg.num_hidden_layers:
                continue
        main[name] = t
    return cfg, main


# ----------------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------------

def rms_norm(x, w, eps):
    # x: (..., C); w: (C). y = w * x / sqrt(mean(x^2) + eps), all fp32 (§2).
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def linear(x, w):
    # x: (..., in); w: (out, in) -> (..., out)
    return x @ w.t()


def swiglu(x, w_gate, w_up, w_down):
    # FFN(x) = down(silu(gate(x)) * up(x))  (§5.1)
    return linear(F.silu(linear(x, w_gate)) * linear(x, w_up), w_down)


def yarn_get_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def _rope_type(cfg):
    rs = cfg.rope_scaling
    if not rs:
        return None
    t = rs.get("rope_type", rs.get("type"))
    if t not in ("yarn", "default", None):
        raise NotImplementedError(f"rope_scaling type {t!r}")
    return "yarn" if t == "yarn" else None


def rope_inv_freq(cfg):
    """(D/2,) float32 inverse frequencies; YaRN blend per §4.1 when rope_scaling is yarn (HF
    _compute_yarn_parameters: floor/ceil correction range clamped to [0, dim-1], linear ramp over dim/2)."""
    dim = cfg.qk_rope_head_dim
    base = float(cfg.rope_theta)
    exps = torch.arange(0, dim, 2, dtype=torch.float64) / dim
    f = 1.0 / base ** exps  # extrapolation frequencies
    if _rope_type(cfg) != "yarn":
        return f.to(torch.float32)
    rs = cfg.rope_scaling
    s = float(rs["factor"])
    l0 = float(rs.get("original_max_position_embeddings") or cfg.max_position_embeddings)
    beta_fast = float(rs.get("beta_fast", 32))
    beta_slow = float(rs.get("beta_slow", 1))

    def corr_dim(n_rot):
        return dim * math.log(l0 / (n_rot * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(corr_dim(beta_fast)), 0)
    high = min(math.ceil(corr_dim(beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    inv = (f / s) * ramp + f * (1 - ramp)
    return inv.to(torch.float32)


def rope_attention_factor(cfg):
    """Multiplier of cos/sin (HF 'attention_factor'); 1 without YaRN."""
    if _rope_type(cfg) != "yarn":
        return 1.0
    rs = cfg.rope_scaling
    s = float(rs["factor"])
    if rs.get("attention_factor") is not None:
        return float(rs["attention_factor"])
    m, m_all = rs.get("mscale"), rs.get("mscale_all_dim")
    if m and m_all:
        return yarn_get_mscale(s, m) / yarn_get_mscale(s, m_all)
    return yarn_get_mscale(s)


def softmax_scale(cfg):
    """qk_head_dim^-0.5, times yarn_get_mscale(factor, mscale_all_dim)^2 under YaRN with mscale_all_dim != 0
    (§4.3, HF DeepseekV3Attention)."""
    scale = cfg.qk_head_dim ** -0.5
    if _rope_type(cfg) == "yarn":
        m_all = cfg.rope_scaling.get("mscale_all_dim", 0)
        if m_all:
            m = yarn_get_mscale(float(cfg.rope_scaling["factor"]), m_all)
            scale = scale * m * m
    return scale


def rope_cos_sin(cfg, positions):
    """positions: (T,) int -> cos, sin: (T, D/2) float32, already multiplied by the attention factor.
    angle = pos * inv_freq in fp32 (as HF); cos/sin evaluated in float64 of that fp32 angle, then rounded."""
    inv = rope_inv_freq(cfg)
    ang = positions.to(torch.float32)[:, None] * inv[None, :]
    a = rope_attention_factor(cfg)
    ang = ang.to(torch.float64)
    return (torch.cos(ang) * a).to(torch.float32), (torch.sin(ang) * a).to(torch.float32)


def apply_rope_interleaved(x, cos, sin):
    """x: (T, ..., D) with adjacent pairs (x[2i], x[2i+1]) rotated by angle i (§4.2, official layout applied to
    the raw weights); cos, sin: (T, D/2)."""
    shape = x.shape
    xr = x.reshape(shape[0], -1, shape[-1] // 2, 2)
    x0, x1 = xr[..., 0], xr[..., 1]
    c = cos[:, None, :]
    s = sin[:, None, :]
    y0 = x0 * c - x1 * s
    y1 = x0 * s + x1 * c
    return torch.stack([y0, y1], dim=-1).reshape(shape)


# ----------------------------------------------------------------------------------------------------------------
# MLA
# ----------------------------------------------------------------------------------------------------------------

def mla_project(cfg, W, layer, x, positions):
    """Shared front half of both MLA paths.

    x: (T, C) normed hidden -> q_nope (T, H, Dn), q_pe (T, H, Dr) rotated, c_kv (T, R) normed latent,
    k_pe (T, Dr) rotated shared key.
    """
    p = f"model.layers.{layer}.self_attn."
    H, Dn, Dr, R = cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.kv_lora_rank
    T = x.shape[0]
    if cfg.q_lora_rank:
        c_q = rms_norm(linear(x, W[p + "q_a_proj.weight"]), W[p + "q_a_layernorm.weight"], cfg.rms_norm_eps)
        q = linear(c_q, W[p + "q_b_proj.weight"])
    else:
        q = linear(x, W[p + "q_proj.weight"])
    q = q.view(T, H, Dn + Dr)  # row h*(Dn+Dr)+j of q_b_proj: j<Dn nope, j>=Dn rope
    q_nope, q_pe = q[..., :Dn], q[..., Dn:]
    kv = linear(x, W[p + "kv_a_proj_with_mqa.weight"])  # (T, R + Dr)
    c_kv, k_pe = kv[:, :R], kv[:, R:]
    c_kv = rms_norm(c_kv, W[p + "kv_a_layernorm.weight"], cfg.rms_norm_eps)  # norm on the latent only
    cos, sin = rope_cos_sin(cfg, positions)
    q_pe = apply_rope_interleaved(q_pe, cos, sin)
    k_pe = apply_rope_interleaved(k_pe[:, None, :], cos, sin)[:, 0, :]
    return q_nope, q_pe, c_kv, k_pe


def mla_naive(cfg, W, layer, x, positions):
    """§3.2. x: (T, C) normed hidden at absolute positions (T,) -> (T, C). Causal over these T tokens."""
    p = f"model.layers.{layer}.self_attn."
    H, Dn, Dv = cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.v_head_dim
    T = x.shape[0]
    q_nope, q_pe, c_kv, k_pe = mla_project(cfg, W, layer, x, positions)
    kvb = linear(c_kv, W[p + "kv_b_proj.weight"]).view(T, H, Dn + Dv)  # row h*(Dn+Dv)+j
    k_nope, v = kvb[..., :Dn], kvb[..., Dn:]
    k = torch.cat([k_nope, k_pe[:, None, :].expand(T, H, k_pe.shape[-1])], dim=-1)  # (T, H, Dqk)
    q = torch.cat([q_nope, q_pe], dim=-1)  # (T, H, Dqk)
    scores = torch.einsum("thd,shd->hts", q, k) * softmax_scale(cfg)  # (H, T, T)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(mask, float("-inf"))
    P = torch.softmax(scores, dim=-1)
    o = torch.einsum("hts,shd->thd", P, v).reshape(T, H * Dv)
    return linear(o, W[p + "o_proj.weight"])


class LatentCache:
    """Per-layer MLA cache of the absorbed path (§3.3): kv[l]: (S, R) normed latents, pe[l]: (S, Dr) rotated k_pe."""

    def __init__(self, cfg):
        self.kv = [torch.zeros(0, cfg.kv_lora_rank) for _ in range(cfg.num_hidden_layers)]
        self.pe = [torch.zeros(0, cfg.qk_rope_head_dim) for _ in range(cfg.num_hidden_layers)]

    def __len__(self):
        return self.kv[0].shape[0]


def mla_absorbed(cfg, W, layer, x, positions, cache):
    """§3.3 (= official attn_impl="absorb"). x: (T, C) new tokens at positions (T,), appended to cache; each
    new token attends to all cached tokens at positions <= its own. -> (T, C)."""
    p = f"model.layers.{layer}.self_attn."
    H, Dn, Dv, R = cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.v_head_dim, cfg.kv_lora_rank
    T = x.shape[0]
    q_nope, q_pe, c_kv, k_pe = mla_project(cfg, W, layer, x, positions)
    start = cache.kv[layer].shape[0]
    cache.kv[layer] = torch.cat([cache.kv[layer], c_kv], dim=0)
    cache.pe[layer] = torch.cat([cache.pe[layer], k_pe], dim=0)
    kv_c, pe_c = cache.kv[layer], cache.pe[layer]  # (S, R), (S, Dr)
    S = kv_c.shape[0]
    w_kvb = W[p + "kv_b_proj.weight"].view(H, Dn + Dv, R)
    w_uk, w_uv = w_kvb[:, :Dn, :], w_kvb[:, Dn:, :]  # (H, Dn, R), (H, Dv, R)
    q_lat = torch.einsum("thd,hdc->thc", q_nope, w_uk)  # (T, H, R)
    scores = (torch.einsum("thc,sc->hts", q_lat, kv_c) + torch.einsum("thr,sr->hts", q_pe, pe_c)) * softmax_scale(cfg)
    key_idx = torch.arange(S)[None, :]
    qry_idx = torch.arange(start, start + T)[:, None]
    scores = scores.masked_fill(key_idx > qry_idx, float("-inf"))
    P = torch.softmax(scores, dim=-1)  # (H, T, S)
    o_lat = torch.einsum("hts,sc->thc", P, kv_c)  # (T, H, R)
    o = torch.einsum("thc,hdc->thd", o_lat, w_uv).reshape(T, H * Dv)
    return linear(o, W[p + "o_proj.weight"])


# ----------------------------------------------------------------------------------------------------------------
# FFN: dense and MoE
# ----------------------------------------------------------------------------------------------------------------

def moe_route(cfg, W, layer, u):
    """§5.2 noaux_tc router. u: (T, C) -> (idx (T, K) long, weights (T, K) float32)."""
    p = f"model.layers.{layer}.mlp.gate."
    E, K, G, KG = cfg.n_routed_experts, cfg.num_experts_per_tok, cfg.n_group, cfg.topk_group
    T = u.shape[0]
    logits = linear(u.to(torch.float32), W[p + "weight"].to(torch.float32))  # (T, E)
    s = torch.sigmoid(logits)
    c = s + W[p + "e_score_correction_bias"][None, :]  # selection scores only
    group_scores = c.view(T, G, E // G).topk(2, dim=-1).values.sum(-1)  # (T, G): top-2 sum per group
    keep = group_scores.topk(KG, dim=-1).indices  # (T, KG)
    gmask = torch.zeros(T, G, dtype=torch.bool)
    gmask.scatter_(1, keep, True)
    emask = gmask[:, :, None].expand(T, G, E // G).reshape(T, E)
    c = c.masked_fill(~emask, float("-inf"))
    idx = c.topk(K, dim=-1).indices  # (T, K)
    w = s.gather(1, idx)  # weights from the UNBIASED sigmoid scores
    if cfg.norm_topk_prob:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    return idx, w * cfg.routed_scaling_factor


def moe(cfg, W, layer, u):
    """§5.3. u: (T, C) -> (T, C) = sum_k w_k Expert_k(u) + shared_experts(u)."""
    p = f"model.layers.{layer}.mlp."
    idx, w = moe_route(cfg, W, layer, u)
    out = torch.zeros_like(u)
    for t in range(u.shape[0]):
        for k in range(idx.shape[1]):
            e = f"{p}experts.{int(idx[t, k])}."
            out[t] += w[t, k] * swiglu(u[t], W[e + "gate_proj.weight"], W[e + "up_proj.weight"],
                                       W[e + "down_proj.weight"])
    if cfg.n_shared_experts:
        sp = p + "shared_experts."
        out = out + swiglu(u, W[sp + "gate_proj.weight"], W[sp + "up_proj.weight"], W[sp + "down_proj.weight"])
    return out


def ffn(cfg, W, layer, u):
    if cfg.is_moe_layer(layer):
        return moe(cfg, W, layer, u)
    p = f"model.layers.{layer}.mlp."
    return swiglu(u, W[p + "gate_proj.weight"], W[p + "up_proj.weight"], W[p + "down_proj.weight"])


# ----------------------------------------------------------------------------------------------------------------
# Whole model
# ----------------------------------------------------------------------------------------------------------------

def _check_ids(cfg, ids):
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    if ids.numel() and (ids.min() < 0 or ids.max() >= cfg.vocab_size):
        raise ValueError("token id out of range")
    return ids


def forward_naive(cfg, W, ids):
    """§2 with naive MLA. ids: (T,) -> logits (T, V) float32, positions 0..T-1."""
    ids = _check_ids(cfg, ids)
    T = ids.shape[0]
    positions = torch.arange(T)
    h = W["model.embed_tokens.weight"][ids]  # no sqrt(C) scaling
    eps = cfg.rms_norm_eps
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        h = h + mla_naive(cfg, W, l, rms_norm(h, W[p + "input_layernorm.weight"], eps), positions)
        h = h + ffn(cfg, W, l, rms_norm(h, W[p + "post_attention_layernorm.weight"], eps))
    h = rms_norm(h, W["model.norm.weight"], eps)
    return linear(h, W["lm_head.weight"])


def forward_absorbed_step(cfg, W, ids, cache):
    """Absorbed MLA with a latent cache: feed new tokens ids (T,) at positions len(cache).. -> logits (T, V)."""
    ids = _check_ids(cfg, ids)
    start = len(cache)
    positions = torch.arange(start, start + ids.shape[0])
    h = W["model.embed_tokens.weight"][ids]
    eps = cfg.rms_norm_eps
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        h = h + mla_absorbed(cfg, W, l, rms_norm(h, W[p + "input_layernorm.weight"], eps), positions, cache)
        h = h + ffn(cfg, W, l, rms_norm(h, W[p + "post_attention_layernorm.weight"], eps))
    h = rms_norm(h, W["model.norm.weight"], eps)
    return linear(h, W["lm_head.weight"])


def logits_absorbed_token_by_token(cfg, W, ids):
    """Teacher-forced decode one token at a time through the latent cache -> logits (T, V)."""
    cache = LatentCache(cfg)
    rows = [forward_absorbed_step(cfg, W, [int(t)], cache)[0] for t in _check_ids(cfg, ids)]
    return torch.stack(rows)


def nll(logits, ids):
    """Mean next-token negative log-likelihood (natural log) over the T-1 predictions, in float64."""
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    lp = torch.log_softmax(logits[:-1].to(torch.float64), dim=-1)
    return float(-lp.gather(1, ids[1:, None]).mean())


def greedy_naive(cfg, W, prompt, n):
    """Greedy decode of n tokens; each step is a full naive forward over the growing sequence (no cache).
    -> (new ids, min over steps of top1 - top2 logit margin)."""
    seq = [int(t) for t in prompt]
    out, margin = [], float("inf")
    for _ in range(n):
        last = forward_naive(cfg, W, seq)[-1]
        top = last.topk(2).values
        margin = min(margin, float(top[0] - top[1]))
        nxt = int(last.argmax())
        out.append(nxt)
        seq.append(nxt)
    return out, margin


def greedy_absorbed(cfg, W, prompt, n):
    """Greedy decode of n tokens with the absorbed path: prompt fed token by token into the latent cache,
    then one token per step."""
    cache = LatentCache(cfg)
    last = None
    for t in prompt:
        last = forward_absorbed_step(cfg, W, [int(t)], cache)[-1]
    out = []
    for _ in range(n):
        nxt = int(last.argmax())
        out.append(nxt)
        last = forward_absorbed_step(cfg, W, [nxt], cache)[-1]
    return out


def read_ids(path):
    with open(path) as f:
        return [int(x) for x in f.read().split()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--ids", required=True, help="file with whitespace-separated token ids")
    ap.add_argument("--greedy", type=int, default=0, help="also greedy-decode this many tokens")
    ap.add_argument("--prompt-len", type=int, default=None, help="prompt = first P ids for --greedy")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg, W = load_model(args.model_dir)
    ids = read_ids(args.ids)
    with torch.no_grad():
        logits = forward_naive(cfg, W, ids)
        res = {"nll": nll(logits, ids), "tokens": len(ids) - 1, "argmax": logits.argmax(-1).tolist()}
        if args.greedy:
            prompt = ids[: args.prompt_len or len(ids)]
            res["greedy"], res["greedy_min_margin"] = greedy_naive(cfg, W, prompt, args.greedy)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
