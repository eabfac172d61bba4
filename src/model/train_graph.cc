#include "model/train_graph.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <utility>
#include <vector>

#include "core/memory.h"
#include "core/threads.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/embedding.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/routing.h"
#include "kernels/vec_exp.h"

namespace r1 {
namespace {

namespace k = kernels;
// Activation buffers (core/memory.h): Uninit(n) skips the zero fill that Zeros(n) does. Uninit is for
// buffers every element of which is written before it is read (a product with accumulate = false, a
// norm, an activation): the zero fill of the step's biggest buffers (logits, N x vocab, twice with
// MTP) cost ~3 % of a step.
using Vec = ScratchVector<float>;

Vec Zeros(int64_t n) { return Vec(static_cast<size_t>(n), 0.0f); }
Vec Uninit(int64_t n) { return Vec(static_cast<size_t>(n)); }
// Writable pointer into a gradient view (grad buffers belong to the ParameterStore).
float* G(const TensorView& v) { return static_cast<float*>(const_cast<void*>(v.data)); }
float* G(const float* p) { return const_cast<float*>(p); }

// Asks for n floats at p into the cache (L2 with `l2`, else L1), one request per 64-byte line.
void PrefetchFloats(const float* p, int64_t n, bool l2 = false) {
  if (l2)
    for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i, 0, 2);
  else
    for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

// A batch row's runs of equal document ids (flat row indices), with the run each continues.
struct Run {
  int64_t start = 0, len = 0;
  int32_t doc = 0;
  int64_t parent = -1;  // index of the shared-prefix run in the same row's list, or −1
};

std::vector<Run> RowRuns(const TrainBatch& batch, int64_t b) {
  std::vector<Run> runs;
  const bool has_prefix = !batch.prefix.empty();
  for (int64_t t = 0; t < batch.T; ++t) {
    const int64_t i = b * batch.T + t;
    if (t == 0 || batch.doc[i] != batch.doc[i - 1]) runs.push_back({i, 0, batch.doc[i], -1});
    ++runs.back().len;
    const int32_t pre = has_prefix ? batch.prefix[i] : -1;
    Run& r = runs.back();
    if (r.len == 1 && pre >= 0) {
      for (int64_t j = static_cast<int64_t>(runs.size()) - 2; j >= 0 && r.parent < 0; --j)
        if (runs[j].doc == pre) r.parent = j;
      R1_CHECK(r.parent >= 0 && runs[r.parent].parent < 0);  // an earlier run of the row, not itself a continuation
    }
    R1_CHECK(pre < 0 ? r.parent < 0 : r.parent >= 0 && runs[r.parent].doc == pre);  // one prefix per run
  }
  return runs;
}

// With shared prefixes the attention runs per document: a run of queries sees its own keys and,
// when it continues a prefix, the prefix's keys before them.
struct Segment {
  int64_t q0 = 0, len = 0;   // the run's rows
  int64_t p0 = 0, plen = 0;  // its shared prefix's rows; plen = 0 for none
  bool sequence = true;      // a sequence of the balance loss (a prefix is not: its continuations are)
  int64_t probs = 0;         // offset of its saved softmax (H, len, plen + len) in AttnActs::probs
};

// Segments of a batch with prefixes (empty without); *probs_size = floats of their softmaxes.
std::vector<Segment> PrefixSegments(const TrainBatch& batch, int64_t H, int64_t* probs_size) {
  std::vector<Segment> segs;
  *probs_size = 0;
  if (batch.prefix.empty()) return segs;
  R1_CHECK(batch.prefix.size() == batch.ids.size());
  for (int64_t b = 0; b < batch.B; ++b) {
    const std::vector<Run> runs = RowRuns(batch, b);
    std::vector<char> is_prefix(runs.size(), 0);
    for (const Run& r : runs)
      if (r.parent >= 0) is_prefix[static_cast<size_t>(r.parent)] = 1;
    for (size_t j = 0; j < runs.size(); ++j) {
      Segment g;
      g.q0 = runs[j].start;
      g.len = runs[j].len;
      if (runs[j].parent >= 0) {
        g.p0 = runs[runs[j].parent].start;
        g.plen = runs[runs[j].parent].len;
      }
      g.sequence = !is_prefix[j];
      g.probs = *probs_size;
      *probs_size += H * g.len * (g.plen + g.len);
      segs.push_back(g);
    }
  }
  return segs;
}

// What every block of the graph shares: sizes, positions, documents, RoPE tables.
struct Ctx {
  const ModelConfig& c;
  int64_t B, T, N;  // N = B·T rows
  const std::vector<int32_t>& pos;
  const std::vector<int32_t>& doc;
  const std::vector<Segment>& segs;  // empty: attention per row, documents masked
  int64_t probs_size;                // floats of the segments' saved softmaxes
  std::vector<float> inv_freq;
  float rope_factor, scale, eps;
  LossOptions opts;
  float grad_scale;
  bool backward;
};

// ---- MLP (dense SwiGLU and each expert) -------------------------------------------------------

struct MlpActs {
  Vec g, u, a, sig;  // (n, F): gate and up pre-activations, silu(g)⊙u, σ(g)
  // From a tape (MlpHiddenRecorded): row j's gate pre-activations at gu[j] and its up ones at
  // gu[j] + F, read where the rollout recorded them; g, u, a and sig stay empty (the backward
  // computes a and σ(g) when it needs them).
  std::vector<const float*> gu;
};

// s.a (n, F) = silu(x·gateᵀ) ⊙ x·upᵀ, the MLP's hidden activation (and g, u and σ(g), for the
// backward).
void MlpHidden(const MlpWeights& w, const float* x, int64_t n, MlpActs& s) {
  const int64_t F = w.gate_proj.rows();
  s.g = Uninit(n * F);
  s.u = Uninit(n * F);
  s.a = Uninit(n * F);
  s.sig = Uninit(n * F);
  s.gu.clear();
  const k::SharedInputJob gate_up[2] = {{&w.gate_proj, s.g.data()}, {&w.up_proj, s.u.data()}};
  k::MatMulSharedInput(x, n, gate_up);
  k::SwiGLU(s.g.data(), s.u.data(), s.a.data(), n * F, s.sig.data());
}

// MlpHidden's activations from recorded gate and up pre-activations: gu(j) is row j's (2F). The
// forward needs nothing of them (the block's output is recorded too), so only where they lie is
// kept; the backward reads them in place and computes silu(g) ⊙ u and σ(g) right before its
// products use them. Done here, those two (n, F) arrays went out to memory and came back cold.
template <class Row>
void MlpHiddenRecorded(int64_t n, Row gu, MlpActs& s) {
  s.g.clear();
  s.u.clear();
  s.a.clear();
  s.sig.clear();
  s.gu.resize(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) s.gu[static_cast<size_t>(j)] = gu(j);
}

// out (n, C) (+)= down(silu(x·gateᵀ) ⊙ x·upᵀ)
void MlpForward(const MlpWeights& w, const float* x, int64_t n, float* out, bool accumulate, MlpActs& s) {
  MlpHidden(w, x, n, s);
  k::MatMul(s.a.data(), n, w.down_proj, out, accumulate);
}

// Reads x and the saved g, u, a; dx (n, C) += ... (= when !accumulate_dx); adds into gw.
void MlpBackward(const MlpWeights& w, const MlpWeights& gw, const float* x, int64_t n, const MlpActs& s,
                 const float* dy, float* dx, bool accumulate_dx = true) {
  const int64_t F = w.gate_proj.rows();
  Vec da = Uninit(n * F), dg = Uninit(n * F), du = Uninit(n * F);  // each assigned whole below
  if (s.gu.empty()) {
    k::MatMulBackward(s.a.data(), n, w.down_proj, dy, da.data(), G(gw.down_proj), /*accumulate_dx=*/false);
    k::SwiGLUBackward(s.g.data(), s.u.data(), da.data(), dg.data(), du.data(), n * F, s.sig.data());
  } else {
    // Recorded rows: a and σ(g) row by row (SwiGLU is elementwise: the bits of one call on all).
    Vec a = Uninit(n * F), sig = Uninit(n * F);
    for (int64_t j = 0; j < n; ++j) {
      const float* r = s.gu[static_cast<size_t>(j)];
      if (j + 1 < n) PrefetchFloats(s.gu[static_cast<size_t>(j + 1)], 2 * F);
      k::SwiGLU(r, r + F, a.data() + j * F, F, sig.data() + j * F);
    }
    k::MatMulBackward(a.data(), n, w.down_proj, dy, da.data(), G(gw.down_proj), /*accumulate_dx=*/false);
    for (int64_t j = 0; j < n; ++j) {
      const float* r = s.gu[static_cast<size_t>(j)];
      k::SwiGLUBackward(r, r + F, da.data() + j * F, dg.data() + j * F, du.data() + j * F, F, sig.data() + j * F);
    }
  }
  k::MatMulBackward(x, n, w.gate_proj, dg.data(), dx, nullptr, accumulate_dx);
  k::MatMulBackward(x, n, w.up_proj, du.data(), dx, nullptr);
  const k::WeightGradJob dw[2] = {{dg.data(), F, G(gw.gate_proj)}, {du.data(), F, G(gw.up_proj)}};
  k::WeightGradsSharedInput(x, n, w.gate_proj.cols(), dw);
}

// ---- MLA, naive form (spec §3.2) ----------------------------------------------------------------

struct AttnActs {
  Vec cq_pre, rstd_q, cq;  // q LoRA: (N, q_lora_rank)
  Vec q;                   // (N, H, Dqk), rope part rotated
  Vec lat_pre, rstd_kv, lat;  // (N, R)
  Vec kpe;                 // (N, Dr) rotated
  Vec key, val;            // (N, H, Dqk), (N, H, Dv)
  Vec probs;               // (B, H, T, T), or the segments' (H, len, plen + len) each
  Vec o;                   // (N, H·Dv)
};

// The keys, values and key positions a segment attends: its prefix's rows, then its own. Without
// a prefix they are the batch's own rows, used in place.
struct SegmentKeys {
  const float* k = nullptr;
  const float* v = nullptr;
  const int32_t* pos = nullptr;
  Vec kbuf, vbuf;
  std::vector<int32_t> pbuf;

  void Gather(const Ctx& cx, const Segment& g, const float* key, int64_t kw, const float* val, int64_t vw) {
    if (g.plen == 0) {
      k = key + g.q0 * kw;
      v = val + g.q0 * vw;
      pos = cx.pos.data() + g.q0;
      return;
    }
    k = Rows(g, key, kw, kbuf);
    v = Rows(g, val, vw, vbuf);
    pos = Rows(g, cx.pos.data(), 1, pbuf);
  }

  // The rows of g's prefix, then its own (width w each), copied into buf; returns buf's data.
  template <class X, class Buf>
  static const X* Rows(const Segment& g, const X* src, int64_t w, Buf& buf) {
    buf.resize(static_cast<size_t>((g.plen + g.len) * w));
    std::copy_n(src + g.p0 * w, g.plen * w, buf.data());
    std::copy_n(src + g.q0 * w, g.len * w, buf.data() + g.plen * w);
    return buf.data();
  }

  // dst rows += the gradient d (S rows of width w) of the rows Rows laid out for g.
  static void AddBack(const Segment& g, const float* d, int64_t w, float* dst) {
    for (int64_t i = 0; i < g.plen * w; ++i) dst[g.p0 * w + i] += d[i];
    for (int64_t i = 0; i < g.len * w; ++i) dst[g.q0 * w + i] += d[g.plen * w + i];
  }

  // AddBack into rows not written before: every row is its own segment's exactly once, and a
  // prefix's segment comes before those continuing it (PrefixSegments' order), so each segment's
  // own rows are assigned and only its prefix's rows are added to. The same sums as AddBack into
  // zeros, without zeroing dst first.
  static void AssignBack(const Segment& g, const float* d, int64_t w, float* dst) {
    for (int64_t i = 0; i < g.plen * w; ++i) dst[g.p0 * w + i] += d[i];
    std::copy_n(d + g.plen * w, g.len * w, dst + g.q0 * w);
  }
};

// Asks for a segment's query rows (qw floats each), and its prefix's and its own key and value
// rows, into L2: the next segment's, while the current one computes.
void PrefetchSegment(const Segment& g, const float* q, int64_t qw, const float* key, const float* val, int64_t vw) {
  PrefetchFloats(q + g.q0 * qw, g.len * qw, true);
  PrefetchFloats(key + g.q0 * qw, g.len * qw, true);
  PrefetchFloats(val + g.q0 * vw, g.len * vw, true);
  PrefetchFloats(key + g.p0 * qw, g.plen * qw, true);
  PrefetchFloats(val + g.p0 * vw, g.plen * vw, true);
}

// h (N, C) += attention(x)
void AttnForward(const Ctx& cx, const AttentionWeights& w, const float* x, float* h, AttnActs& s) {
  const ModelConfig& c = cx.c;
  const int64_t N = cx.N, T = cx.T, H = c.num_attention_heads, R = c.kv_lora_rank, Dr = c.qk_rope_head_dim;
  const int64_t Dn = c.qk_nope_head_dim, Dv = c.v_head_dim, Dqk = c.qk_head_dim();
  // Every buffer below is assigned whole by the product, norm, copy or kernel that fills it.
  s.q = Uninit(N * H * Dqk);
  Vec kv = Uninit(N * (R + Dr));
  // The products of x: the query's (down-projection, or whole) and the latent's, x packed once.
  const bool lora = c.q_lora_rank > 0;
  if (lora) s.cq_pre = Uninit(N * c.q_lora_rank);
  const k::SharedInputJob of_x[2] = {{lora ? &w.q_a_proj : &w.q_proj, lora ? s.cq_pre.data() : s.q.data()},
                                     {&w.kv_a_proj_with_mqa, kv.data()}};
  k::MatMulSharedInput(x, N, of_x);
  if (lora) {
    const int64_t Q = c.q_lora_rank;
    s.cq = Uninit(N * Q);
    s.rstd_q = Uninit(N);
    k::RmsNorm(s.cq_pre.data(), w.q_a_layernorm, N, Q, cx.eps, s.cq.data(), s.rstd_q.data());
    k::MatMul(s.cq.data(), N, w.q_b_proj, s.q.data());
  }
  k::RopeInterleaved(s.q.data() + Dn, N, H, H * Dqk, Dqk, cx.pos.data(), cx.inv_freq.data(), Dr, cx.rope_factor);
  s.lat_pre = Uninit(N * R);
  s.kpe = Uninit(N * Dr);
  for (int64_t n = 0; n < N; ++n) {
    std::copy_n(kv.data() + n * (R + Dr), R, s.lat_pre.data() + n * R);
    std::copy_n(kv.data() + n * (R + Dr) + R, Dr, s.kpe.data() + n * Dr);
  }
  s.lat = Uninit(N * R);
  s.rstd_kv = Uninit(N);
  k::RmsNorm(s.lat_pre.data(), w.kv_a_layernorm, N, R, cx.eps, s.lat.data(), s.rstd_kv.data());
  k::RopeInterleaved(s.kpe.data(), N, 1, Dr, Dr, cx.pos.data(), cx.inv_freq.data(), Dr, cx.rope_factor);
  Vec kvb = Uninit(N * H * (Dn + Dv));
  k::MatMul(s.lat.data(), N, w.kv_b_proj, kvb.data());
  s.key = Uninit(N * H * Dqk);
  s.val = Uninit(N * H * Dv);
  for (int64_t i = 0; i < N * H; ++i) {
    std::copy_n(kvb.data() + i * (Dn + Dv), Dn, s.key.data() + i * Dqk);
    std::copy_n(s.kpe.data() + (i / H) * Dr, Dr, s.key.data() + i * Dqk + Dn);
    std::copy_n(kvb.data() + i * (Dn + Dv) + Dn, Dv, s.val.data() + i * Dv);
  }
  s.o = Uninit(N * H * Dv);
  if (!cx.segs.empty()) {
    s.probs = Uninit(cx.probs_size);
    SegmentKeys keys;
    for (size_t i = 0; i < cx.segs.size(); ++i) {
      const Segment& g = cx.segs[i];
      if (i + 1 < cx.segs.size())
        PrefetchSegment(cx.segs[i + 1], s.q.data(), H * Dqk, s.key.data(), s.val.data(), H * Dv);
      keys.Gather(cx, g, s.key.data(), H * Dqk, s.val.data(), H * Dv);
      k::AttentionMask mask{cx.pos.data() + g.q0, keys.pos, nullptr, nullptr};
      k::AttentionNaive(s.q.data() + g.q0 * H * Dqk, keys.k, keys.v, g.len, g.plen + g.len, H, Dqk, Dv, cx.scale,
                        mask, s.o.data() + g.q0 * H * Dv, s.probs.data() + g.probs);
    }
    k::MatMul(s.o.data(), N, w.o_proj, h, /*accumulate=*/true);
    return;
  }
  s.probs = Uninit(cx.B * H * T * T);
  for (int64_t b = 0; b < cx.B; ++b) {
    const int64_t r0 = b * T;
    k::AttentionMask mask{cx.pos.data() + r0, cx.pos.data() + r0, cx.doc.data() + r0, cx.doc.data() + r0};
    k::AttentionNaive(s.q.data() + r0 * H * Dqk, s.key.data() + r0 * H * Dqk, s.val.data() + r0 * H * Dv, T, T, H,
                      Dqk, Dv, cx.scale, mask, s.o.data() + r0 * H * Dv, s.probs.data() + b * H * T * T);
  }
  k::MatMul(s.o.data(), N, w.o_proj, h, /*accumulate=*/true);
}

// dh: gradient of the block's residual after attention; dx (N, C) = gradient wrt x (assigned).
void AttnBackward(const Ctx& cx, const AttentionWeights& w, const AttentionWeights& gw, const float* x,
                  const AttnActs& s, const float* dh, float* dx) {
  const ModelConfig& c = cx.c;
  const int64_t N = cx.N, T = cx.T, H = c.num_attention_heads, R = c.kv_lora_rank, Dr = c.qk_rope_head_dim;
  const int64_t Dn = c.qk_nope_head_dim, Dv = c.v_head_dim, Dqk = c.qk_head_dim();
  Vec dout = Uninit(N * H * Dv);
  k::MatMulBackward(s.o.data(), N, w.o_proj, dh, dout.data(), G(gw.o_proj), /*accumulate_dx=*/false);
  Vec dq = Uninit(N * H * Dqk), dkey, dval;  // assigned by the kernel (added up per segment)
  if (!cx.segs.empty()) {
    dkey = Uninit(N * H * Dqk);  // every row assigned by AssignBack
    dval = Uninit(N * H * Dv);
    SegmentKeys keys;
    Vec dk, dv;
    for (size_t i = 0; i < cx.segs.size(); ++i) {
      const Segment& g = cx.segs[i];
      const int64_t S = g.plen + g.len;
      if (i + 1 < cx.segs.size()) {
        const Segment& nx = cx.segs[i + 1];
        PrefetchSegment(nx, s.q.data(), H * Dqk, s.key.data(), s.val.data(), H * Dv);
        PrefetchFloats(s.probs.data() + nx.probs, H * nx.len * (nx.plen + nx.len), true);
        PrefetchFloats(dout.data() + nx.q0 * H * Dv, nx.len * H * Dv, true);
      }
      keys.Gather(cx, g, s.key.data(), H * Dqk, s.val.data(), H * Dv);
      dk.resize(static_cast<size_t>(S * H * Dqk));
      dv.resize(static_cast<size_t>(S * H * Dv));
      k::AttentionMask mask{cx.pos.data() + g.q0, keys.pos, nullptr, nullptr};
      k::AttentionNaiveBackward(s.q.data() + g.q0 * H * Dqk, keys.k, keys.v, s.probs.data() + g.probs,
                                dout.data() + g.q0 * H * Dv, g.len, S, H, Dqk, Dv, cx.scale, mask,
                                dq.data() + g.q0 * H * Dqk, dk.data(), dv.data());
      SegmentKeys::AssignBack(g, dk.data(), H * Dqk, dkey.data());
      SegmentKeys::AssignBack(g, dv.data(), H * Dv, dval.data());
    }
  } else {
    dkey = Uninit(N * H * Dqk);
    dval = Uninit(N * H * Dv);
    for (int64_t b = 0; b < cx.B; ++b) {
      const int64_t r0 = b * T;
      k::AttentionMask mask{cx.pos.data() + r0, cx.pos.data() + r0, cx.doc.data() + r0, cx.doc.data() + r0};
      k::AttentionNaiveBackward(s.q.data() + r0 * H * Dqk, s.key.data() + r0 * H * Dqk, s.val.data() + r0 * H * Dv,
                                s.probs.data() + b * H * T * T, dout.data() + r0 * H * Dv, T, T, H, Dqk, Dv,
                                cx.scale, mask, dq.data() + r0 * H * Dqk, dkey.data() + r0 * H * Dqk,
                                dval.data() + r0 * H * Dv);
    }
  }
  // Split the key gradient: k_nope and v come from kv_b_proj; the rope key is shared by all heads.
  Vec dkvb = Uninit(N * H * (Dn + Dv)), dkpe = Zeros(N * Dr);
  for (int64_t i = 0; i < N * H; ++i) {
    std::copy_n(dkey.data() + i * Dqk, Dn, dkvb.data() + i * (Dn + Dv));
    std::copy_n(dval.data() + i * Dv, Dv, dkvb.data() + i * (Dn + Dv) + Dn);
    for (int64_t j = 0; j < Dr; ++j) dkpe[(i / H) * Dr + j] += dkey[i * Dqk + Dn + j];
  }
  Vec dlat = Uninit(N * R);
  k::MatMulBackward(s.lat.data(), N, w.kv_b_proj, dkvb.data(), dlat.data(), G(gw.kv_b_proj), /*accumulate_dx=*/false);
  Vec dlat_pre = Zeros(N * R);
  k::RmsNormBackward(s.lat_pre.data(), w.kv_a_layernorm, s.rstd_kv.data(), dlat.data(), N, R, dlat_pre.data(),
                     G(gw.kv_a_layernorm));
  k::RopeInterleaved(dkpe.data(), N, 1, Dr, Dr, cx.pos.data(), cx.inv_freq.data(), Dr, cx.rope_factor,
                     /*inverse=*/true);
  Vec dkv = Uninit(N * (R + Dr));
  for (int64_t n = 0; n < N; ++n) {
    std::copy_n(dlat_pre.data() + n * R, R, dkv.data() + n * (R + Dr));
    std::copy_n(dkpe.data() + n * Dr, Dr, dkv.data() + n * (R + Dr) + R);
  }
  k::MatMulBackward(x, N, w.kv_a_proj_with_mqa, dkv.data(), dx, nullptr, /*accumulate_dx=*/false);
  k::RopeInterleaved(dq.data() + Dn, N, H, H * Dqk, Dqk, cx.pos.data(), cx.inv_freq.data(), Dr, cx.rope_factor,
                     /*inverse=*/true);
  // The weight gradients of the products of x at the end, x packed once for both.
  std::vector<k::WeightGradJob> of_x = {{dkv.data(), R + Dr, G(gw.kv_a_proj_with_mqa)}};
  Vec dcq_pre;
  if (c.q_lora_rank > 0) {
    const int64_t Q = c.q_lora_rank;
    Vec dcq = Uninit(N * Q);
    dcq_pre = Zeros(N * Q);
    k::MatMulBackward(s.cq.data(), N, w.q_b_proj, dq.data(), dcq.data(), G(gw.q_b_proj), /*accumulate_dx=*/false);
    k::RmsNormBackward(s.cq_pre.data(), w.q_a_layernorm, s.rstd_q.data(), dcq.data(), N, Q, dcq_pre.data(),
                       G(gw.q_a_layernorm));
    k::MatMulBackward(x, N, w.q_a_proj, dcq_pre.data(), dx, nullptr);
    of_x.push_back({dcq_pre.data(), Q, G(gw.q_a_proj)});
  } else {
    k::MatMulBackward(x, N, w.q_proj, dq.data(), dx, nullptr);
    of_x.push_back({dq.data(), H * Dqk, G(gw.q_proj)});
  }
  k::WeightGradsSharedInput(x, N, w.kv_a_proj_with_mqa.cols(), of_x);
}

// ---- DeepSeekMoE (spec §5) ---------------------------------------------------------------------

struct MoeActs {
  Vec scores;                                // (N, E) sigmoid
  std::vector<int32_t> idx;                  // (N, K)
  Vec wts;                                   // (N, K)
  std::vector<std::vector<int64_t>> slots;   // per expert: indices into (N, K)
  std::vector<int64_t> slot_row;             // (N, K): the slot's row in its expert's batch
  std::vector<int64_t> order;                // ExpertTasks: the parallel schedule
  std::vector<MlpActs> expert;
  std::vector<Vec> xe;                       // per expert: its gathered input rows (n, C)
  std::vector<Vec> ye;                       // per expert: its outputs (n, C)
  std::vector<std::vector<const float*>> ye_rows;  // with a tape instead: each output row, in place
  MlpActs shared;
  Vec dscores;                               // (N, E): balance-loss gradient, from the forward
};

constexpr int64_t kSharedTask = -1;

// The MoE layer's parallel tasks: the shared expert (kSharedTask) if any, then the routed experts
// that received tokens by decreasing load (ties by index). Handing the largest out first keeps the
// threads' shares even when routing is skewed; results do not depend on the order.
std::vector<int64_t> ExpertTasks(const std::vector<int64_t>& load, bool has_shared) {
  std::vector<int64_t> order;
  if (has_shared) order.push_back(kSharedTask);
  for (int64_t e = 0; e < static_cast<int64_t>(load.size()); ++e)
    if (load[e] > 0) order.push_back(e);
  std::stable_sort(order.begin() + has_shared, order.end(), [&](int64_t a, int64_t b) { return load[a] > load[b]; });
  return order;
}

// Gathers x rows of the tokens in `slot` (indices into (N, K)) into xe (n, C).
void Gather(const float* x, int64_t C, int64_t K, const std::vector<int64_t>& slot, Vec& xe) {
  xe.resize(slot.size() * static_cast<size_t>(C));
  for (size_t j = 0; j < slot.size(); ++j) std::copy_n(x + (slot[j] / K) * C, C, xe.data() + j * C);
}

// dst[token] += w·rows[e][j] for every slot (token's k-th choice = expert e, row j of its batch),
// w the slot's gate weight if `weighted`, else 1. In parallel over tokens; each token's rows are
// added in expert order, as a serial loop over the experts would, so the result does not depend on
// the thread count.
void ScatterAddExperts(const MoeActs& s, int64_t N, int64_t K, int64_t C, const std::vector<Vec>& rows, bool weighted,
                       float* dst) {
  ParallelFor(N, N * K * C >= (1 << 16), [&](int64_t n) {
    thread_local std::vector<int64_t> order;  // the token's slots by expert
    order.resize(static_cast<size_t>(K));
    std::iota(order.begin(), order.end(), n * K);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s.idx[a] < s.idx[b]; });
    float* d = dst + n * C;
    for (const int64_t i : order) {
      const float g = weighted ? s.wts[i] : 1.0f;
      const float* src = rows[s.idx[i]].data() + s.slot_row[i] * C;
      for (int64_t c = 0; c < C; ++c) d[c] += g * src[c];
    }
  });
}

// h (N, C) += MoE(x); returns the balance loss (mean over rows) and fills `load` (E). With a tape
// (cx.opts.tape, layer l), the routing and the experts' activations come from it and h is left
// alone, and may be null (the caller takes the layer's output from the tape).
double MoeForward(const Ctx& cx, const MoeWeights& w, const float* x, float* h, MoeActs& s, std::vector<int64_t>& load,
                  int64_t l) {
  const ModelConfig& c = cx.c;
  const int64_t N = cx.N, C = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  const FfnTape* tape = cx.opts.tape;
  const int64_t* rows = cx.opts.tape_rows;
  if (tape) {
    s.scores = Uninit(N * E);
    s.idx.resize(static_cast<size_t>(N * K));
    s.wts = Uninit(N * K);
    for (int64_t n = 0; n < N; ++n) {
      std::copy_n(tape->scores(l, rows[n]), E, s.scores.data() + n * E);
      std::copy_n(tape->idx(l, rows[n]), K, s.idx.data() + n * K);
      std::copy_n(tape->wts(l, rows[n]), K, s.wts.data() + n * K);
    }
  } else {
    Vec logits = Zeros(N * E);
    // The router's product stays f32 with bf16 products elsewhere: bf16 rounding of its logits
    // would flip top-k choices (DeepSeek-V3 keeps its gating in high precision too).
    k::MatMul(x, N, w.gate, logits.data(), /*accumulate=*/false, k::GemmPrecision::kF32);
    s.scores = Zeros(N * E);
    s.idx.assign(static_cast<size_t>(N * K), 0);
    s.wts = Zeros(N * K);
    const k::RouterParams rp{
        E, K, c.n_group, c.topk_group, c.norm_topk_prob, static_cast<float>(c.routed_scaling_factor)};
    k::RouteV3(logits.data(), w.e_score_correction_bias, N, rp, s.idx.data(), s.wts.data(), s.scores.data());
  }
  // Sequence-wise balance loss per row (with shared prefixes: per sequence, prefix + continuation),
  // averaged over them; its gradient is kept for backward.
  s.dscores = Zeros(N * E);
  double balance = 0.0;
  if (cx.segs.empty()) {
    for (int64_t b = 0; b < cx.B; ++b)
      balance += k::BalanceLoss(s.scores.data() + b * cx.T * E, s.idx.data() + b * cx.T * K, cx.T, E, K,
                                cx.opts.balance_alpha, cx.grad_scale / static_cast<double>(cx.B),
                                s.dscores.data() + b * cx.T * E);
    balance /= static_cast<double>(cx.B);
  } else if (cx.opts.balance_alpha != 0.0) {
    int64_t n_seq = 0;
    for (const Segment& g : cx.segs) n_seq += g.sequence;
    Vec scores, ds;
    std::vector<int32_t> idx;
    for (const Segment& g : cx.segs) {
      if (!g.sequence) continue;
      const int64_t n = g.plen + g.len;
      const float* sc = SegmentKeys::Rows(g, s.scores.data(), E, scores);
      const int32_t* ix = SegmentKeys::Rows(g, s.idx.data(), K, idx);
      ds.assign(static_cast<size_t>(n * E), 0.0f);
      balance += k::BalanceLoss(sc, ix, n, E, K, cx.opts.balance_alpha,
                                cx.grad_scale / static_cast<double>(n_seq), ds.data());
      SegmentKeys::AddBack(g, ds.data(), E, s.dscores.data());
    }
    balance /= static_cast<double>(std::max<int64_t>(1, n_seq));
  }
  s.slots.assign(static_cast<size_t>(E), {});
  s.slot_row.resize(static_cast<size_t>(N * K));
  for (int64_t i = 0; i < N * K; ++i) {
    s.slot_row[i] = static_cast<int64_t>(s.slots[s.idx[i]].size());
    s.slots[s.idx[i]].push_back(i);
  }
  load.resize(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) load[e] = static_cast<int64_t>(s.slots[e].size());
  s.expert.assign(static_cast<size_t>(E), {});
  s.xe.assign(static_cast<size_t>(E), {});
  s.ye.assign(static_cast<size_t>(E), {});
  s.ye_rows.assign(tape ? static_cast<size_t>(E) : 0, {});
  // Experts run in parallel, one per thread, each single-threaded (OpenBLAS and the GEMV run on
  // one thread inside a parallel region): a few hundred rows each are too small to split well.
  // The shared expert's gate/up half (all N rows) is one more such task, handed out first. The
  // routed experts' outputs are added into h afterwards in expert order, then the shared expert's
  // down projection, so h does not depend on the schedule or the thread count.
  s.order = ExpertTasks(load, w.has_shared);
  ParallelFor(
      static_cast<int64_t>(s.order.size()), true,
      [&](int64_t i) {
        const int64_t e = s.order[i];
        if (e == kSharedTask) {
          if (tape)
            MlpHiddenRecorded(
                N, [&](int64_t n) { return tape->gu(l, rows[n]); }, s.shared);
          else
            MlpHidden(w.shared_experts, x, N, s.shared);
          return;
        }
        const int64_t n = load[e];
        const std::vector<int64_t>& slot = s.slots[e];
        Gather(x, C, K, slot, s.xe[e]);
        if (!tape) {
          s.ye[e] = Uninit(n * C);
          MlpForward(w.experts[e], s.xe[e].data(), n, s.ye[e].data(), false, s.expert[e]);
          return;
        }
        MlpHiddenRecorded(
            n, [&](int64_t j) { return tape->routed_gu(l, rows[slot[j] / K], slot[j] % K); }, s.expert[e]);
        std::vector<const float*>& ye = s.ye_rows[e];
        ye.resize(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) ye[j] = tape->routed_y(l, rows[slot[j] / K], slot[j] % K);
      },
      Schedule::kDynamic);
  if (tape) return balance;
  ScatterAddExperts(s, N, K, C, s.ye, /*weighted=*/true, h);
  if (w.has_shared) k::MatMul(s.shared.a.data(), N, w.shared_experts.down_proj, h, /*accumulate=*/true);
  return balance;
}

// dx (N, C) = gradient wrt x (assigned: by the shared expert's backward, or zeroed first).
void MoeBackward(const Ctx& cx, const MoeWeights& w, const MoeWeights& gw, const float* x, const MoeActs& s,
                 const float* dh, float* dx) {
  const ModelConfig& c = cx.c;
  const int64_t N = cx.N, C = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  if (!w.has_shared) std::fill_n(dx, N * C, 0.0f);
  Vec dweights = Zeros(N * K);
  std::vector<Vec> dxe(static_cast<size_t>(E));  // per expert: gradient wrt its gathered inputs
  // The same tasks as the forward; dx gets the shared expert's part in its task and the routed
  // experts' parts in expert order after.
  ParallelFor(
      static_cast<int64_t>(s.order.size()), true,
      [&](int64_t task) {
        const int64_t e = s.order[task];
        if (e == kSharedTask) {
          MlpBackward(w.shared_experts, gw.shared_experts, x, N, s.shared, dh, dx, /*accumulate_dx=*/false);
          return;
        }
        const auto& slot = s.slots[e];
        const int64_t n = static_cast<int64_t>(slot.size());
        Vec dye = Uninit(n * C);  // assigned whole below
        for (int64_t j = 0; j < n; ++j) {  // ∂L/∂w_k = <dh, FFN_k(x)>
          if (!s.ye_rows.empty() && j + 1 < n) PrefetchFloats(s.ye_rows[e][j + 1], C);
          dweights[slot[j]] = static_cast<float>(k::ExpertSlotBackward(
              dh + (slot[j] / K) * C, s.ye_rows.empty() ? s.ye[e].data() + j * C : s.ye_rows[e][j], s.wts[slot[j]], C,
              dye.data() + j * C));
        }
        dxe[e] = Uninit(n * C);
        MlpBackward(w.experts[e], gw.experts[e], s.xe[e].data(), n, s.expert[e], dye.data(), dxe[e].data(),
                    /*accumulate_dx=*/false);
      },
      Schedule::kDynamic);
  ScatterAddExperts(s, N, K, C, dxe, /*weighted=*/false, dx);
  const k::RouterParams rp{E, K, c.n_group, c.topk_group, c.norm_topk_prob, static_cast<float>(c.routed_scaling_factor)};
  Vec dscores = s.dscores, dlogits = Zeros(N * E);
  k::RouteV3Backward(s.scores.data(), s.idx.data(), dweights.data(), N, rp, dscores.data());
  k::SigmoidBackward(s.scores.data(), dscores.data(), N * E, dlogits.data());
  k::MatMulBackward(x, N, w.gate, dlogits.data(), dx, G(gw.gate), /*accumulate_dx=*/true, k::GemmPrecision::kF32);
}

// ---- Transformer block ---------------------------------------------------------------------------

struct BlockActs {
  Vec h_in, rstd1, x1;  // block input, its norm
  AttnActs attn;
  Vec h_mid, rstd2, x2;
  MlpActs mlp;
  MoeActs moe;
};

// Layer l's output for every row of the batch, as the tape (cx.opts.tape) recorded it.
Vec RecordedOutput(const Ctx& cx, int64_t l) {
  const int64_t N = cx.N, C = cx.c.hidden_size;
  Vec h = Uninit(N * C);
  for (int64_t n = 0; n < N; ++n) std::copy_n(cx.opts.tape->h_out(l, cx.opts.tape_rows[n]), C, h.data() + n * C);
  return h;
}

// h (N, C) → h + attn(norm(h)) → + ffn(norm(·)). Returns the balance loss of an MoE block. l: the
// main layer's index, for a tape (cx.opts.tape): the feed-forward activations and the block's
// output then come from it (into h only with keep_output); −1 for an MTP block (never taped).
double BlockForward(const Ctx& cx, const LayerWeights& w, Vec& h, BlockActs& s, std::vector<int64_t>* load, int64_t l,
                    bool keep_output) {
  const int64_t N = cx.N, C = cx.c.hidden_size;
  const FfnTape* tape = l >= 0 ? cx.opts.tape : nullptr;
  s.h_in = h;
  s.x1 = Uninit(N * C);
  s.rstd1 = Uninit(N);
  k::RmsNorm(h.data(), w.input_layernorm, N, C, cx.eps, s.x1.data(), s.rstd1.data());
  AttnForward(cx, w.attn, s.x1.data(), h.data(), s.attn);
  // With a tape the feed-forward leaves h alone and the output comes from the tape: h itself is kept.
  if (tape)
    s.h_mid = std::move(h);
  else
    s.h_mid = h;
  s.x2 = Uninit(N * C);
  s.rstd2 = Uninit(N);
  k::RmsNorm(s.h_mid.data(), w.post_attention_layernorm, N, C, cx.eps, s.x2.data(), s.rstd2.data());
  if (!tape) {
    if (w.is_moe) return MoeForward(cx, w.moe, s.x2.data(), h.data(), s.moe, *load, -1);
    MlpForward(w.mlp, s.x2.data(), N, h.data(), /*accumulate=*/true, s.mlp);
    return 0.0;
  }
  double balance = 0.0;
  if (w.is_moe)
    balance = MoeForward(cx, w.moe, s.x2.data(), nullptr, s.moe, *load, l);
  else
    MlpHiddenRecorded(
        N, [&](int64_t n) { return tape->gu(l, cx.opts.tape_rows[n]); }, s.mlp);
  if (keep_output) h = RecordedOutput(cx, l);  // else h stays moved from: the caller drops it
  return balance;
}

// dh: in, the gradient wrt the block output; out, wrt its input.
void BlockBackward(const Ctx& cx, const LayerWeights& w, const LayerWeights& gw, const BlockActs& s, Vec& dh) {
  const int64_t N = cx.N, C = cx.c.hidden_size;
  Vec dx2 = Uninit(N * C);  // assigned by the feed-forward's backward
  if (w.is_moe) MoeBackward(cx, w.moe, gw.moe, s.x2.data(), s.moe, dh.data(), dx2.data());
  else
    MlpBackward(w.mlp, gw.mlp, s.x2.data(), N, s.mlp, dh.data(), dx2.data(), /*accumulate_dx=*/false);
  k::RmsNormBackward(s.h_mid.data(), w.post_attention_layernorm, s.rstd2.data(), dx2.data(), N, C, dh.data(),
                     G(gw.post_attention_layernorm));
  Vec dx1 = Uninit(N * C);  // assigned by AttnBackward
  AttnBackward(cx, w.attn, gw.attn, s.x1.data(), s.attn, dh.data(), dx1.data());
  k::RmsNormBackward(s.h_in.data(), w.input_layernorm, s.rstd1.data(), dx1.data(), N, C, dh.data(),
                     G(gw.input_layernorm));
}

}  // namespace

std::vector<int32_t> DocumentPositions(const TrainBatch& batch) {
  std::vector<int32_t> pos(batch.ids.size());
  for (int64_t b = 0; b < batch.B; ++b) {
    const std::vector<Run> runs = RowRuns(batch, b);
    for (const Run& r : runs) {
      const int64_t first = r.parent >= 0 ? runs[r.parent].len : 0;
      for (int64_t t = 0; t < r.len; ++t) pos[r.start + t] = static_cast<int32_t>(first + t);
    }
  }
  return pos;
}

LossReport TrainForwardBackward(const ModelConfig& c, const ModelWeights& w, ModelWeights* grads,
                                const TrainBatch& batch, const LossOptions& opts, float grad_scale) {
  const int64_t B = batch.B, T = batch.T, N = B * T, C = c.hidden_size, V = c.vocab_size;
  R1_CHECK(static_cast<int64_t>(batch.ids.size()) == N && batch.targets.size() == batch.ids.size() &&
           batch.doc.size() == batch.ids.size());
  R1_CHECK(!opts.tape || opts.tape_rows) << "a tape needs its rows";
  const std::vector<int32_t> pos = DocumentPositions(batch);
  int64_t probs_size = 0;
  const std::vector<Segment> segs = PrefixSegments(batch, c.num_attention_heads, &probs_size);
  const k::RopeParams rope = c.Rope();
  Ctx cx{c, B, T, N, pos, batch.doc, segs, probs_size, k::RopeInvFreq(rope), k::RopeAttentionFactor(rope), c.SoftmaxScale(),
         static_cast<float>(c.rms_norm_eps), opts, grad_scale, grads != nullptr};
  LossReport rep;

  // ---- forward: main model
  // With a tape every layer's output is recorded, so a layer's forward needs only its input: the
  // previous layer's recorded output (or the embedding). A backward pass then runs each layer's
  // forward right before that layer's backward (`deferred`), with the same operations in the same
  // order: its activations are still in cache when the backward reads them, instead of all
  // layers' activations going out to memory first (tens of MB a micro-batch).
  const bool mtp = !w.mtp.empty() && !opts.token_objective;
  const bool deferred = opts.tape != nullptr && grads != nullptr && !mtp;
  const int64_t L = c.num_hidden_layers;
  // Layer l's input: the embedding for l = 0, else layer l − 1's recorded output.
  auto layer_input = [&](int64_t l, Vec& h) {
    if (l == 0) {
      h = Zeros(N * C);
      k::Embedding(w.embed_tokens, batch.ids.data(), N, h.data());
      return;
    }
    h = RecordedOutput(cx, l - 1);
  };
  std::vector<BlockActs> acts(static_cast<size_t>(deferred ? 1 : L));
  std::vector<double> balance(static_cast<size_t>(L), 0.0);
  std::vector<std::vector<int64_t>> loads(static_cast<size_t>(L));
  Vec h;
  if (deferred) {
    layer_input(L, h);
  } else {
    layer_input(0, h);
    for (int64_t l = 0; l < L; ++l)
      balance[l] = BlockForward(cx, w.layers[l], h, acts[l], &loads[l], l, /*keep_output=*/true);
  }
  // The balance loss and the expert loads in layer order (the deferred forwards fill them later).
  auto report_layers = [&]() {
    for (int64_t l = 0; l < L; ++l) {
      rep.balance += balance[l];
      if (w.layers[l].is_moe) rep.expert_load.push_back(std::move(loads[l]));
    }
  };
  if (!deferred) report_layers();
  const Vec& h_last = h;
  Vec xf = Uninit(N * C), rstd_f = Uninit(N);
  k::RmsNorm(h_last.data(), w.norm, N, C, cx.eps, xf.data(), rstd_f.data());
  Vec logits = Uninit(N * V);
  k::MatMul(xf.data(), N, w.lm_head, logits.data());
  int64_t n_main = 0;
  for (int32_t t : batch.targets) n_main += t >= 0;
  rep.main_tokens = n_main;
  if (opts.token_objective) {
    // Policy gradient: logp of each target under softmax(z/τ), the caller's objective, then
    // dL/dz = coef·(onehot − p)/τ. Entropy is reported for the trained positions.
    const float inv_t = 1.0f / opts.temperature;
    Vec logp = Zeros(N), coef = Zeros(N);
    std::vector<double> row_entropy(static_cast<size_t>(N), 0.0);
    // Each trained row becomes p = softmax(z/τ) in place (one exp per logit); logp of the target
    // is kept. Entropy H = lse − Σ p·z/τ.
    ParallelFor(N, N * V >= (1 << 16), [&](int64_t n) {
      thread_local std::vector<float> z;  // this thread's copy of z/τ
      z.resize(static_cast<size_t>(V));
      if (batch.targets[n] < 0) return;
      float* row = logits.data() + n * V;
      float m = -INFINITY;
      for (int64_t v = 0; v < V; ++v) {
        z[static_cast<size_t>(v)] = row[v] * inv_t;
        m = std::max(m, z[static_cast<size_t>(v)]);
      }
      const double sum = k::ExpShifted(z.data(), V, m, 1.0f, row);
      const double lse = m + std::log(sum);
      logp[n] = static_cast<float>(z[static_cast<size_t>(batch.targets[n])] - lse);
      const float inv_sum = static_cast<float>(1.0 / sum);
      double ez = 0.0;
      for (int64_t v = 0; v < V; ++v) {
        row[v] *= inv_sum;
        ez += static_cast<double>(row[v]) * z[static_cast<size_t>(v)];
      }
      row_entropy[static_cast<size_t>(n)] = lse - ez;
    });
    double entropy = 0.0;
    for (double h : row_entropy) entropy += h;
    rep.entropy = n_main ? entropy / static_cast<double>(n_main) : 0.0;
    rep.main = opts.token_objective(logp.data(), coef.data());
    ParallelFor(N, N * V >= (1 << 16), [&](int64_t n) {
      float* row = logits.data() + n * V;
      if (batch.targets[n] < 0) {
        std::fill(row, row + V, 0.0f);
        return;
      }
      const float g = grad_scale * coef[n] * inv_t;
      for (int64_t v = 0; v < V; ++v) row[v] *= -g;
      row[batch.targets[n]] += g;
    });
  } else {
    // Logit distillation: KL(q ‖ p) = Σ_v q_v (log q_v − log p_v) per trained row, gradient
    // w·(p − q)/n, computed before the cross-entropy overwrites the logits and added after it.
    Vec dkl;
    const bool distill = opts.teacher_probs != nullptr && opts.distill_weight != 0.0 && n_main > 0;
    if (distill) {
      dkl = Zeros(N * V);
      const double gs = grad_scale * opts.distill_weight / static_cast<double>(n_main);
      std::vector<double> row_kl(static_cast<size_t>(N), 0.0);  // summed in row order below
      ParallelFor(N, true, [&](int64_t n) {
        if (batch.targets[n] < 0) return;
        const float* row = logits.data() + n * V;
        const float* q = opts.teacher_probs + n * V;
        float* d = dkl.data() + n * V;
        const float m = k::MaxOf(row, V);
        const double sum = k::ExpShifted(row, V, m, 1.0f, d);  // d = exp(z − m) for now
        const double lse = m + std::log(sum);
        const double inv_sum = 1.0 / sum;
        double kl_n = 0.0;
        for (int64_t v = 0; v < V; ++v) {
          if (q[v] > 0) kl_n += q[v] * (std::log(static_cast<double>(q[v])) - (row[v] - lse));
          d[v] = static_cast<float>(gs * (static_cast<double>(d[v]) * inv_sum - q[v]));
        }
        row_kl[static_cast<size_t>(n)] = kl_n;
      });
      double kl = 0.0;
      for (double x : row_kl) kl += x;
      rep.distill = kl / static_cast<double>(n_main);
    }
    const double ce = k::CrossEntropyForwardBackward(logits.data(), batch.targets.data(), N, V,
                                                      n_main ? grad_scale / static_cast<float>(n_main) : 0.0f, nullptr);
    rep.main = n_main ? ce / static_cast<double>(n_main) : 0.0;
    if (distill)
      for (int64_t i = 0; i < N * V; ++i) logits[i] += dkl[i];
  }
  Vec& dlogits = logits;  // now holds the gradient

  // ---- forward: MTP module (depth 1), predicting the token after next
  Vec emb_next, en, rstd_e, hh, rstd_h, cat, xm, xmf, rstd_m, dlogits2;
  std::vector<int32_t> next_ids, has_next;
  BlockActs mtp_acts;
  if (mtp) {
    const MtpWeights& m = w.mtp[0];
    emb_next = Zeros(N * C);
    next_ids.assign(static_cast<size_t>(N), 0);
    has_next.assign(static_cast<size_t>(N), 0);
    std::vector<int32_t> targets2(static_cast<size_t>(N), -1);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i + 1 < T; ++i) {
        const int64_t r = b * T + i;
        next_ids[r] = batch.ids[r + 1];
        has_next[r] = 1;
        if (batch.doc[r + 1] == batch.doc[r]) targets2[r] = batch.targets[r + 1];
      }
    for (int64_t r = 0; r < N; ++r)
      if (has_next[r]) w.embed_tokens.RowToF32(next_ids[r], emb_next.data() + r * C);
    en = Uninit(N * C);
    rstd_e = Uninit(N);
    hh = Uninit(N * C);
    rstd_h = Uninit(N);
    k::RmsNorm(emb_next.data(), m.enorm, N, C, cx.eps, en.data(), rstd_e.data());
    k::RmsNorm(xf.data(), m.hnorm, N, C, cx.eps, hh.data(), rstd_h.data());
    cat = Uninit(N * 2 * C);
    for (int64_t r = 0; r < N; ++r) {
      std::copy_n(en.data() + r * C, C, cat.data() + r * 2 * C);
      std::copy_n(hh.data() + r * C, C, cat.data() + r * 2 * C + C);
    }
    xm = Uninit(N * C);
    k::MatMul(cat.data(), N, m.eh_proj, xm.data());
    std::vector<int64_t> load;
    rep.balance += BlockForward(cx, m.block, xm, mtp_acts, &load, -1, /*keep_output=*/true);
    if (m.block.is_moe) rep.expert_load.push_back(std::move(load));
    xmf = Uninit(N * C);
    rstd_m = Uninit(N);
    k::RmsNorm(xm.data(), m.shared_head_norm, N, C, cx.eps, xmf.data(), rstd_m.data());
    dlogits2 = Uninit(N * V);
    k::MatMul(xmf.data(), N, w.lm_head, dlogits2.data());
    int64_t n2 = 0;
    for (int32_t t : targets2) n2 += t >= 0;
    const float scale2 = n2 ? static_cast<float>(grad_scale * opts.mtp_weight / static_cast<double>(n2)) : 0.0f;
    const double ce2 = k::CrossEntropyForwardBackward(dlogits2.data(), targets2.data(), N, V, scale2, nullptr);
    rep.mtp = n2 ? opts.mtp_weight * ce2 / static_cast<double>(n2) : 0.0;
    rep.mtp_tokens = n2;
  }
  auto total_loss = [&]() {
    rep.loss = rep.main + rep.mtp + rep.balance;
    if (rep.distill != 0.0) rep.loss += opts.distill_weight * rep.distill;
  };
  if (!grads) {
    total_loss();
    return rep;
  }
  ModelWeights& g = *grads;

  // ---- backward: MTP module first (it feeds gradient into the main model's final hidden state)
  Vec dxf = Zeros(N * C);
  if (mtp) {
    const MtpWeights& m = w.mtp[0];
    const MtpWeights& gm = g.mtp[0];
    Vec dxmf = Uninit(N * C), dxm = Zeros(N * C);
    k::MatMulBackward(xmf.data(), N, w.lm_head, dlogits2.data(), dxmf.data(), G(g.lm_head), /*accumulate_dx=*/false);
    k::RmsNormBackward(xm.data(), m.shared_head_norm, rstd_m.data(), dxmf.data(), N, C, dxm.data(),
                       G(gm.shared_head_norm));
    BlockBackward(cx, m.block, gm.block, mtp_acts, dxm);
    Vec dcat = Uninit(N * 2 * C);
    k::MatMulBackward(cat.data(), N, m.eh_proj, dxm.data(), dcat.data(), G(gm.eh_proj), /*accumulate_dx=*/false);
    Vec den = Uninit(N * C), dhh = Uninit(N * C), demb = Zeros(N * C);
    for (int64_t r = 0; r < N; ++r) {
      std::copy_n(dcat.data() + r * 2 * C, C, den.data() + r * C);
      std::copy_n(dcat.data() + r * 2 * C + C, C, dhh.data() + r * C);
    }
    k::RmsNormBackward(emb_next.data(), m.enorm, rstd_e.data(), den.data(), N, C, demb.data(), G(gm.enorm));
    k::RmsNormBackward(xf.data(), m.hnorm, rstd_h.data(), dhh.data(), N, C, dxf.data(), G(gm.hnorm));
    for (int64_t r = 0; r < N; ++r)
      if (has_next[r]) k::EmbeddingBackward(&next_ids[r], 1, demb.data() + r * C, C, G(g.embed_tokens));
  }
  // ---- backward: head, final norm, layers, embedding
  k::MatMulBackward(xf.data(), N, w.lm_head, dlogits.data(), dxf.data(), G(g.lm_head));
  Vec dh = Zeros(N * C);
  k::RmsNormBackward(h_last.data(), w.norm, rstd_f.data(), dxf.data(), N, C, dh.data(), G(g.norm));
  for (int64_t l = L - 1; l >= 0; --l) {
    if (deferred) {
      Vec h_in;
      layer_input(l, h_in);
      acts[0] = BlockActs();
      balance[l] = BlockForward(cx, w.layers[l], h_in, acts[0], &loads[l], l, /*keep_output=*/false);
    }
    BlockBackward(cx, w.layers[l], g.layers[l], acts[deferred ? 0 : l], dh);
  }
  k::EmbeddingBackward(batch.ids.data(), N, dh.data(), C, G(g.embed_tokens));
  if (deferred) report_layers();
  total_loss();
  return rep;
}

}  // namespace r1
