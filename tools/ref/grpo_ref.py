"""PyTorch reference of one GRPO step as `r1 grpo` runs it (src/rl/grpo.cc), float32 or bf16 mixed precision, for
speed comparisons.

One step over P prompts:
  rollout  each prompt is prefilled once into an absorbed-MLA latent cache (§3.3), the cache is copied to its G
           completions, and all P*G sequences then decode together one token per step, sampling from
           softmax(logits / temperature) and recording log pi_old of every sampled token (torch.no_grad);
           rewards: accuracy (the last \\boxed{...} equals the answer) + 0.1 * format, as rl/reward.h weights them.
  update   group-normalized advantages A = (r - mean) / (std + 1e-4) (unbiased std, as r1 and TRL); the clipped-ratio
           objective, token-mean over all completion tokens (beta = 0, mu = 1), plus the sequence-wise balance loss;
           forward + backward in micro-batches of prompt + completion rows (tools/ref/train_ref.py's naive-MLA block),
           gradient-norm clip, one AdamW step, then the router correction-bias update from this step's expert loads.

Precision: f32 by default. --precision bf16 (against `r1 grpo --precision bf16`) runs the forwards of rollout and
update under torch.autocast("cpu", bfloat16): the matrix products, and through autograd their backward, in bf16
with f32 accumulation; weights, gradients, AdamW and the losses stay f32. Autocast returns the products in bf16:
the attention scores and the logits (log-probs, loss) are cast back to f32 here, in the update also the router
logits and the MLA latents before their norms (train_ref.py); SwiGLU's silu * up, and in the rollout the router's
sigmoid and the latent norms (deepseek_v3.py's moe_route and mla_project), run in bf16.

Completion length: every completion is exactly `length` tokens (a sampled EOS does not end it), so that the amount
of work is fixed; r1 stops a sequence at EOS, which an untrained model samples about once per V tokens.

Usage (prints one JSON object per step):
  /usr/bin/python3 tools/ref/grpo_ref.py <model_dir> <prompts.json> --group 8 --length 64 [--threads 2] [--steps 3]
      [--precision f32|bf16]
prompts.json: [{"ids": [prompt token ids], "answer": "..."}, ...]; step s uses prompts[s*P : (s+1)*P].
The model dir needs its tokenizer.json (to turn completions into text for the reward).
"""

import argparse
import json
import os
import re
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_v3 as ref  # noqa: E402
import train_ref  # noqa: E402


# ----------------------------------------------------------------------------------------------------------------
# Rollout: batched absorbed-MLA decode with a latent cache
# ----------------------------------------------------------------------------------------------------------------

class BatchLatentCache:
    """Per-layer latent caches of N sequences: kv[l] (N, S, R) normed c_kv, pe[l] (N, S, Dr) rotated k_pe.
    Sequence n's token at position t lives in row t; rows past a sequence's length are never attended."""

    def __init__(self, cfg, N, S):
        L, R, Dr = cfg.num_hidden_layers, cfg.kv_lora_rank, cfg.qk_rope_head_dim
        self.kv = [torch.zeros(N, S, R) for _ in range(L)]
        self.pe = [torch.zeros(N, S, Dr) for _ in range(L)]

    def repeat(self, G):
        """Each sequence's cache copied to G consecutive rows (prompt -> its G completions)."""
        self.kv = [t.repeat_interleave(G, dim=0) for t in self.kv]
        self.pe = [t.repeat_interleave(G, dim=0) for t in self.pe]


def mla_cached(cfg, W, layer, x, pos, cache):
    """Absorbed MLA (= ref.mla_absorbed, batched). x: (N, T, C) normed new tokens at positions pos (N, T); writes
    their latents into the cache; query t sees cached keys s <= pos[n, t]. -> (N, T, C)"""
    p = f"model.layers.{layer}.self_attn."
    H, Dn, Dv, R = cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.v_head_dim, cfg.kv_lora_rank
    N, T, C = x.shape
    # the per-token projections, with the N*T tokens flattened into the reference's time axis
    q_nope, q_pe, c_kv, k_pe = ref.mla_project(cfg, W, layer, x.reshape(N * T, C), pos.reshape(-1))
    q_nope, q_pe = q_nope.view(N, T, H, Dn), q_pe.view(N, T, H, -1)
    rows = torch.arange(N)[:, None]
    cache.kv[layer][rows, pos] = c_kv.view(N, T, R)
    cache.pe[layer][rows, pos] = k_pe.view(N, T, -1)
    S = int(pos.max()) + 1
    kv_c, pe_c = cache.kv[layer][:, :S], cache.pe[layer][:, :S]  # (N, S, R), (N, S, Dr)
    w_kvb = W[p + "kv_b_proj.weight"].view(H, Dn + Dv, R)
    w_uk, w_uv = w_kvb[:, :Dn], w_kvb[:, Dn:]  # (H, Dn, R), (H, Dv, R)
    q_lat = torch.einsum("nthd,hdr->nthr", q_nope, w_uk)  # W_UK absorbed into the query
    scores = (torch.einsum("nthr,nsr->nhts", q_lat, kv_c).float()
              + torch.einsum("nthd,nsd->nhts", q_pe, pe_c).float()) * ref.softmax_scale(cfg)  # (N, H, T, S)
    future = torch.arange(S)[None, None, :] > pos[:, :, None]  # (N, T, S)
    P = torch.softmax(scores.masked_fill(future[:, None], float("-inf")), dim=-1)
    o_lat = torch.einsum("nhts,nsr->nthr", P, kv_c)
    o = torch.einsum("nthr,hdr->nthd", o_lat, w_uv).reshape(N, T, H * Dv)  # W_UV applied after attention
    return ref.linear(o, W[p + "o_proj.weight"])


def moe_infer(cfg, W, layer, u):
    """§5.3 MoE without autograd bookkeeping: u (M, C) -> (M, C); each expert runs once on its routed rows."""
    p = f"model.layers.{layer}.mlp."
    idx, w = ref.moe_route(cfg, W, layer, u)  # (M, K), (M, K)
    w = w.float()  # the router's weights come back in bf16 under autocast
    out = torch.zeros_like(u)
    for e in range(cfg.n_routed_experts):
        rows, slot = (idx == e).nonzero(as_tuple=True)
        if rows.numel():
            q = f"{p}experts.{e}."
            y = ref.swiglu(u[rows], W[q + "gate_proj.weight"], W[q + "up_proj.weight"], W[q + "down_proj.weight"])
            out.index_add_(0, rows, w[rows, slot][:, None] * y)
    if cfg.n_shared_experts:
        q = p + "shared_experts."
        out += ref.swiglu(u, W[q + "gate_proj.weight"], W[q + "up_proj.weight"], W[q + "down_proj.weight"])
    return out


def forward_cached(cfg, W, ids, pos, cache):
    """ids, pos: (N, T) -> logits (N, T, V), through the latent cache."""
    eps = cfg.rms_norm_eps
    h = W["model.embed_tokens.weight"][ids]  # (N, T, C)
    N, T, C = h.shape
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        h = h + mla_cached(cfg, W, l, ref.rms_norm(h, W[p + "input_layernorm.weight"], eps), pos, cache)
        u = ref.rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
        if cfg.is_moe_layer(l):
            h = h + moe_infer(cfg, W, l, u.reshape(N * T, C)).view(N, T, C)
        else:
            h = h + ref.swiglu(u, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"],
                               W[p + "mlp.down_proj.weight"])
    return ref.linear(ref.rms_norm(h, W["model.norm.weight"], eps), W["lm_head.weight"]).float()


@torch.no_grad()
def rollout(model, prompts, G, length, temperature, generator):
    """prompts: P lists of ids -> (completions (P*G, length) long, old_logp (P*G, length) float32), G rows per
    prompt in prompt order. log pi_old = log softmax(logits / temperature)[sampled id]."""
    cfg = model.cfg
    W = {**model.params, **model.biases}
    P = len(prompts)
    plen = torch.tensor([len(x) for x in prompts])
    Tp = int(plen.max())
    S = Tp + length
    # prefill: prompts right-padded to Tp (pad rows are overwritten by the completion before anyone attends them)
    ids = torch.zeros(P, Tp, dtype=torch.long)
    for i, x in enumerate(prompts):
        ids[i, :len(x)] = torch.tensor(x)
    cache = BatchLatentCache(cfg, P, S)
    logits = forward_cached(cfg, W, ids, torch.arange(Tp).expand(P, Tp), cache)
    last = logits[torch.arange(P), plen - 1].repeat_interleave(G, dim=0)  # (N, V)
    cache.repeat(G)
    pos = plen.repeat_interleave(G)  # (N,) where each sequence's next token goes
    out = torch.empty(P * G, length, dtype=torch.long)
    old_logp = torch.empty(P * G, length)
    for t in range(length):
        logp = torch.log_softmax(last / temperature, dim=-1)
        tok = torch.multinomial(logp.exp(), 1, generator=generator)  # (N, 1)
        out[:, t] = tok[:, 0]
        old_logp[:, t] = logp.gather(1, tok)[:, 0]
        if t + 1 < length:
            last = forward_cached(cfg, W, tok, (pos + t)[:, None], cache)[:, 0]
    return out, old_logp


# ----------------------------------------------------------------------------------------------------------------
# Rewards: completion text from the byte-level vocabulary, then accuracy + format
# ----------------------------------------------------------------------------------------------------------------

def byte_decoder():
    """Inverse of the byte-level BPE alphabet: printable Latin-1 bytes stand for themselves, the other 68 bytes
    for the code points 256, 257, ... in byte order."""
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(ord("¡"), ord("¬") + 1)) | set(range(ord("®"), 256))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


class Detokenizer:
    """Token ids -> text, from the tokenizer.json next to the checkpoint."""

    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "tokenizer.json")) as f:
            tj = json.load(f)
        byte_of = byte_decoder()
        # added tokens are literal text (special ones such as BOS, EOS, pad decode to nothing); the rest of the
        # vocabulary is spelled in the byte alphabet
        self.bytes = {a["id"]: b"" if a.get("special") else a["content"].encode() for a in tj["added_tokens"]}
        for piece, i in tj["model"]["vocab"].items():
            if i not in self.bytes:
                self.bytes[i] = bytes(byte_of[c] for c in piece)

    def text(self, ids):
        return b"".join(self.bytes.get(i, b"") for i in ids).decode("utf-8", errors="replace")


BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def reward(text, answer):
    """accuracy (the last box after the last </think>, or anywhere without one, equals the answer) + 0.1 * format
    (one </think>, no other <think> but a leading one, non-blank reasoning before it, a non-empty box after it)."""
    tail = text.rsplit("</think>", 1)[-1]
    boxes = BOXED.findall(tail)
    correct = bool(boxes) and boxes[-1].strip() == answer
    body = text[len("<think>"):] if text.startswith("<think>") else text  # the prompt already opened <think>
    formed = (body.count("</think>") == 1 and "<think>" not in body and body.split("</think>")[0].strip() != ""
              and any(b.strip() for b in boxes))
    return float(correct) + 0.1 * float(formed)


def group_advantages(rewards, G):
    """rewards (P*G,) -> (r - group mean) / (unbiased group std + 1e-4)."""
    r = rewards.view(-1, G)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).reshape(-1)


# ----------------------------------------------------------------------------------------------------------------
# Update: clipped-ratio token-mean loss, backward, AdamW, correction-bias update
# ----------------------------------------------------------------------------------------------------------------

class RowBatch:
    """Micro-batch of prompt + completion rows as r1's MakeBatch builds it: ids (B, T) with T = longest row - 1,
    targets = next token on completion positions (-1 elsewhere), doc 0 on real tokens and -1 on padding."""

    def __init__(self, prompts, completions, balance_alpha):
        seqs = [p + c for p, c in zip(prompts, completions)]
        B, T = len(seqs), max(len(s) for s in seqs) - 1
        self.ids = torch.zeros(B, T, dtype=torch.long)
        self.targets = torch.full((B, T), -1, dtype=torch.long)
        self.doc = torch.full((B, T), -1, dtype=torch.long)
        for b, (p, s) in enumerate(zip(prompts, seqs)):
            n = len(s) - 1
            self.ids[b, :n] = torch.tensor(s[:-1])
            self.doc[b, :n] = 0
            self.targets[b, len(p) - 1:n] = torch.tensor(s[len(p):])
        self.positions = torch.arange(T).expand(B, T)  # one document per row, starting at 0
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        self.allowed = causal[None] & (self.doc[:, :, None] == self.doc[:, None, :])
        self.balance_alpha = balance_alpha


def grpo_loss(model, batch, old_logp, adv, n_tokens, temperature, eps_low, eps_high):
    """Forward of one micro-batch: sum over its completion tokens of -min(rho A, clip(rho) A) / n_tokens, plus
    the balance loss. old_logp (B, T) aligned with targets; adv (B,). -> (loss, MoE stats)."""
    cfg, W = model.cfg, model.params
    cos, sin = train_ref.rope_tables(cfg, batch.positions[:1], torch.float32)
    cos, sin = cos.expand(batch.ids.shape[0], -1, -1), sin.expand(batch.ids.shape[0], -1, -1)
    stats = {}
    h = W["model.embed_tokens.weight"][batch.ids]
    bal = h.new_zeros(())
    for l in range(cfg.num_hidden_layers):
        h, b_l = train_ref.block(model, l, h, cos, sin, batch.allowed, batch.balance_alpha, stats)
        bal = bal + b_l
    logits = ref.linear(ref.rms_norm(h, W["model.norm.weight"], cfg.rms_norm_eps), W["lm_head.weight"]).float()
    valid = batch.targets >= 0
    logp = torch.log_softmax(logits / temperature, dim=-1).gather(-1, batch.targets.clamp(min=0)[..., None])[..., 0]
    ratio = torch.exp(logp - old_logp)
    A = adv[:, None]
    J = torch.minimum(ratio * A, ratio.clamp(1 - eps_low, 1 + eps_high) * A)
    return -(J * valid).sum() / n_tokens + bal, stats


def update(model, opt, prompts, completions, old_logp, adv, args):
    """One optimizer step (mu = 1) on all P*G completions. prompts: (P*G) id lists; completions (N, L) long."""
    N, Lc = completions.shape
    n_tokens = N * Lc
    opt.zero_grad()
    loads = {}
    for i in range(0, N, args.micro_batch):
        rows = range(i, min(N, i + args.micro_batch))
        batch = RowBatch([prompts[r] for r in rows], [completions[r].tolist() for r in rows], args.balance_alpha)
        # old log-probs placed at the positions that predict each completion token
        olp = torch.zeros(batch.ids.shape)
        for b, r in enumerate(rows):
            start = len(prompts[r]) - 1
            olp[b, start:start + Lc] = old_logp[r]
        with autocast(args):
            loss, stats = grpo_loss(model, batch, olp, adv[i:i + len(rows)], n_tokens, args.temperature, args.epsilon,
                                    args.epsilon)
        loss.backward()
        for layer, s in stats.items():
            loads[layer] = loads.get(layer, 0) + s["load"]
    params = list(model.params.values())
    torch.nn.utils.clip_grad_norm_(params, args.clip)
    opt.step()
    with torch.no_grad():  # b_i += gamma * sign(mean load - load_i), per MoE layer
        for layer, load in loads.items():
            b = model.biases[f"model.layers.{layer}.{train_ref.BIAS_SUFFIX}"]
            b += args.bias_update_speed * torch.sign(load.float().mean() - load.float())


def autocast(args):
    """The forward's precision: bf16 autocast, or (f32) a context that changes nothing."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("prompts_json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--prompts-per-step", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--length", type=int, default=64, help="completion tokens per sequence (fixed)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--epsilon", type=float, default=0.2)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--balance-alpha", type=float, default=1e-4)
    ap.add_argument("--bias-update-speed", type=float, default=1e-3)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32", help="bf16: the forwards under autocast")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = train_ref.load_train_model(args.model_dir, dtype=torch.float32)
    # r1 grpo's optimizer: AdamW(0.9, 0.95, 1e-8), weight decay 0 by default
    opt = torch.optim.AdamW(list(model.params.values()), lr=args.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    detok = Detokenizer(args.model_dir)
    with open(args.prompts_json) as f:
        problems = json.load(f)
    P, G = args.prompts_per_step, args.group
    if len(problems) < args.steps * P:
        raise SystemExit(f"{args.prompts_json}: {len(problems)} prompts, {args.steps} steps need {args.steps * P}")
    gen = torch.Generator().manual_seed(args.seed)
    for step in range(args.steps):
        batch = problems[step * P:(step + 1) * P]
        t0 = time.perf_counter()
        with autocast(args):
            comps, old_logp = rollout(model, [x["ids"] for x in batch], G, args.length, args.temperature, gen)
        rewards = torch.tensor([reward(detok.text(comps[n].tolist()), batch[n // G]["answer"]) for n in range(P * G)])
        adv = group_advantages(rewards, G)
        t1 = time.perf_counter()
        update(model, opt, [batch[n // G]["ids"] for n in range(P * G)], comps, old_logp, adv, args)
        t2 = time.perf_counter()
        tokens = P * G * args.length
        print(json.dumps({"step": step + 1, "rollout_seconds": t1 - t0, "update_seconds": t2 - t1,
                          "completion_tokens": tokens, "completion_length_mean": args.length,
                          "reward_mean": float(rewards.mean()),
                          "rollout_tokens_per_s": tokens / (t1 - t0), "update_tokens_per_s": tokens / (t2 - t1)}),
              flush=True)


if __name__ == "__main__":
    main()
