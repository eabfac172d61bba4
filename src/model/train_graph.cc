#include "model/train_graph.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <utility>
#include <vector>

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
// Activation buffers: an allocator whose value-less construction leaves the floats as they are, so
// Uninit(n) skips the zero fill that Zeros(n) does. Uninit is for buffers every element of which is
// written before it is read (a product with accumulate = false, a norm, an activation): the zero
// fill of the step's biggest buffers (logits, N x vocab, twice with MTP) cost ~3 % of a step.
template <class T>
struct NoInitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = NoInitAllocator<U>;
  };
  NoInitAllocator() = default;
  template <class U>
  NoInitAllocator(const NoInitAllocator<U>&) noexcept {}
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
};
using Vec = std::vector<float, NoInitAllocator<float>>;

Vec Zeros(int64_t n) { return Vec(static_cast<size_t>(n), 0.0f); }
Vec Uninit(int64_t n) { return Vec(static_cast<size_t>(n)); }
// Writable pointer into a gradient view (grad buffers belong to the ParameterStore).
float* G(const TensorView& v) { return static_cast<float*>(const_cast<void*>(v.data)); }
float* G(const float* p) { return const_cast<float*>(p); }

// What every block of the graph shares: sizes, positions, documents, RoPE tables.
struct Ctx {
  const ModelConfig& c;
  int64_t B, T, N;  // N = B·T rows
  const std::vector<int32_t>& pos;
  const std::vector<int32_t>& doc;
  std::vector<float> inv_freq;
  float rope_factor, scale, eps;
  LossOptions opts;
  float grad_scale;
  bool backward;
};

// ---- MLP (dense SwiGLU and each expert) -------------------------------------------------------

struct MlpActs {
  Vec g, u, a, sig;  // (n, F): gate and up pre-activations, silu(g)⊙u, σ(g)
};

// s.a (n, F) = silu(x·gateᵀ) ⊙ x·upᵀ, the MLP's hidden activation.
void MlpHidden(const MlpWeights& w, const float* x, int64_t n, MlpActs& s) {
  const int64_t F = w.gate_proj.rows();
  s.g = Uninit(n * F);
  s.u = Uninit(n * F);
  s.a = Uninit(n * F);
  s.sig = Uninit(n * F);
  k::MatMul(x, n, w.gate_proj, s.g.data());
  k::MatMul(x, n, w.up_proj, s.u.data());
  k::SwiGLU(s.g.data(), s.u.data(), s.a.data(), n * F, s.sig.data());
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
  k::MatMulBackward(s.a.data(), n, w.down_proj, dy, da.data(), G(gw.down_proj), /*accumulate_dx=*/false);
  k::SwiGLUBackward(s.g.data(), s.u.data(), da.data(), dg.data(), du.data(), n * F, s.sig.data());
  k::MatMulBackward(x, n, w.gate_proj, dg.data(), dx, G(gw.gate_proj), accumulate_dx);
  k::MatMulBackward(x, n, w.up_proj, du.data(), dx, G(gw.up_proj));
}

// ---- MLA, naive form (spec §3.2) ----------------------------------------------------------------

struct AttnActs {
  Vec cq_pre, rstd_q, cq;  // q LoRA: (N, q_lora_rank)
  Vec q;                   // (N, H, Dqk), rope part rotated
  Vec lat_pre, rstd_kv, lat;  // (N, R)
  Vec kpe;                 // (N, Dr) rotated
  Vec key, val;            // (N, H, Dqk), (N, H, Dv)
  Vec probs;               // (B, H, T, T)
  Vec o;                   // (N, H·Dv)
};

// h (N, C) += attention(x)
void AttnForward(const Ctx& cx, const AttentionWeights& w, const float* x, float* h, AttnActs& s) {
  const ModelConfig& c = cx.c;
  const int64_t N = cx.N, T = cx.T, H = c.num_attention_heads, R = c.kv_lora_rank, Dr = c.qk_rope_head_dim;
  const int64_t Dn = c.qk_nope_head_dim, Dv = c.v_head_dim, Dqk = c.qk_head_dim();
  // Every buffer below is assigned whole by the product, norm, copy or kernel that fills it.
  s.q = Uninit(N * H * Dqk);
  if (c.q_lora_rank > 0) {
    const int64_t Q = c.q_lora_rank;
    s.cq_pre = Uninit(N * Q);
    s.cq = Uninit(N * Q);
    s.rstd_q = Uninit(N);
    k::MatMul(x, N, w.q_a_proj, s.cq_pre.data());
    k::RmsNorm(s.cq_pre.data(), w.q_a_layernorm, N, Q, cx.eps, s.cq.data(), s.rstd_q.data());
    k::MatMul(s.cq.data(), N, w.q_b_proj, s.q.data());
  } else {
    k::MatMul(x, N, w.q_proj, s.q.data());
  }
  k::RopeInterleaved(s.q.data() + Dn, N, H, H * Dqk, Dqk, cx.pos.data(), cx.inv_freq.data(), Dr, cx.rope_factor);
  Vec kv = Uninit(N * (R + Dr));
  k::MatMul(x, N, w.kv_a_proj_with_mqa, kv.data());
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
  s.probs = Uninit(cx.B * H * T * T);
  for (int64_t b = 0; b < cx.B; ++b) {
    const int64_t r0 = b * T;
    k::AttentionMask mask{cx.pos.data() + r0, cx.pos.data() + r0, cx.doc.data() + r0, cx.doc.data() + r0};
    k::AttentionNaive(s.q.data() + r0 * H * Dqk, s.key.data() + r0 * H * Dqk, s.val.data() + r0 * H * Dv, T, T, H,
                      Dqk, Dv, cx.scale, mask, s.o.data() + r0 * H * Dv, s.probs.data() + b * H * T * T);
  }
  k::MatMul(s.o.data(), N, w.o_proj, h, /*accumulate=*/true);
}

// dh: gradient of the block's residual after attention; dx (N, C) += gradient wrt x.
void AttnBackward(const Ctx& cx, const AttentionWeights& w, const AttentionWeights& gw, const float* x,
                  const AttnActs& s, const float* dh, float* dx) {
  const ModelConfig& c = cx.c;
  const int64_t N = cx.N, T = cx.T, H = c.num_attention_heads, R = c.kv_lora_rank, Dr = c.qk_rope_head_dim;
  const int64_t Dn = c.qk_nope_head_dim, Dv = c.v_head_dim, Dqk = c.qk_head_dim();
  Vec dout = Uninit(N * H * Dv);
  k::MatMulBackward(s.o.data(), N, w.o_proj, dh, dout.data(), G(gw.o_proj), /*accumulate_dx=*/false);
  Vec dq = Uninit(N * H * Dqk), dkey = Uninit(N * H * Dqk), dval = Uninit(N * H * Dv);  // assigned by the kernel
  for (int64_t b = 0; b < cx.B; ++b) {
    const int64_t r0 = b * T;
    k::AttentionMask mask{cx.pos.data() + r0, cx.pos.data() + r0, cx.doc.data() + r0, cx.doc.data() + r0};
    k::AttentionNaiveBackward(s.q.data() + r0 * H * Dqk, s.key.data() + r0 * H * Dqk, s.val.data() + r0 * H * Dv,
                              s.probs.data() + b * H * T * T, dout.data() + r0 * H * Dv, T, T, H, Dqk, Dv, cx.scale,
                              mask, dq.data() + r0 * H * Dqk, dkey.data() + r0 * H * Dqk, dval.data() + r0 * H * Dv);
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
  k::MatMulBackward(x, N, w.kv_a_proj_with_mqa, dkv.data(), dx, G(gw.kv_a_proj_with_mqa));
  k::RopeInterleaved(dq.data() + Dn, N, H, H * Dqk, Dqk, cx.pos.data(), cx.inv_freq.data(), Dr, cx.rope_factor,
                     /*inverse=*/true);
  if (c.q_lora_rank > 0) {
    const int64_t Q = c.q_lora_rank;
    Vec dcq = Uninit(N * Q), dcq_pre = Zeros(N * Q);
    k::MatMulBackward(s.cq.data(), N, w.q_b_proj, dq.data(), dcq.data(), G(gw.q_b_proj), /*accumulate_dx=*/false);
    k::RmsNormBackward(s.cq_pre.data(), w.q_a_layernorm, s.rstd_q.data(), dcq.data(), N, Q, dcq_pre.data(),
                       G(gw.q_a_layernorm));
    k::MatMulBackward(x, N, w.q_a_proj, dcq_pre.data(), dx, G(gw.q_a_proj));
  } else {
    k::MatMulBackward(x, N, w.q_proj, dq.data(), dx, G(gw.q_proj));
  }
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
#pragma omp parallel if (N * K * C >= (1 << 16))
  {
    std::vector<int64_t> order(static_cast<size_t>(K));  // the token's slots by expert
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      std::iota(order.begin(), order.end(), n * K);
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s.idx[a] < s.idx[b]; });
      float* d = dst + n * C;
      for (const int64_t i : order) {
        const float g = weighted ? s.wts[i] : 1.0f;
        const float* src = rows[s.idx[i]].data() + s.slot_row[i] * C;
        for (int64_t c = 0; c < C; ++c) d[c] += g * src[c];
      }
    }
  }
}

// h (N, C) += MoE(x); returns the balance loss (mean over rows) and fills `load` (E).
double MoeForward(const Ctx& cx, const MoeWeights& w, const float* x, float* h, MoeActs& s, std::vector<int64_t>& load) {
  const ModelConfig& c = cx.c;
  const int64_t N = cx.N, C = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  Vec logits = Zeros(N * E);
  k::MatMul(x, N, w.gate, logits.data());
  s.scores = Zeros(N * E);
  s.idx.assign(static_cast<size_t>(N * K), 0);
  s.wts = Zeros(N * K);
  const k::RouterParams rp{E, K, c.n_group, c.topk_group, c.norm_topk_prob, static_cast<float>(c.routed_scaling_factor)};
  k::RouteV3(logits.data(), w.e_score_correction_bias, N, rp, s.idx.data(), s.wts.data(), s.scores.data());
  // Sequence-wise balance loss per row, averaged over rows; its gradient is kept for backward.
  s.dscores = Zeros(N * E);
  double balance = 0.0;
  for (int64_t b = 0; b < cx.B; ++b)
    balance += k::BalanceLoss(s.scores.data() + b * cx.T * E, s.idx.data() + b * cx.T * K, cx.T, E, K,
                              cx.opts.balance_alpha, cx.grad_scale / static_cast<double>(cx.B),
                              s.dscores.data() + b * cx.T * E);
  balance /= static_cast<double>(cx.B);
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
  // Experts run in parallel, one per thread, each single-threaded (OpenBLAS and the GEMV run on
  // one thread inside a parallel region): a few hundred rows each are too small to split well.
  // The shared expert's gate/up half (all N rows) is one more such task, handed out first. The
  // routed experts' outputs are added into h afterwards in expert order, then the shared expert's
  // down projection, so h does not depend on the schedule or the thread count.
  s.order = ExpertTasks(load, w.has_shared);
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < s.order.size(); ++i) {
    const int64_t e = s.order[i];
    if (e == kSharedTask) {
      MlpHidden(w.shared_experts, x, N, s.shared);
      continue;
    }
    const int64_t n = load[e];
    Gather(x, C, K, s.slots[e], s.xe[e]);
    s.ye[e] = Uninit(n * C);
    MlpForward(w.experts[e], s.xe[e].data(), n, s.ye[e].data(), false, s.expert[e]);
  }
  ScatterAddExperts(s, N, K, C, s.ye, /*weighted=*/true, h);
  if (w.has_shared) k::MatMul(s.shared.a.data(), N, w.shared_experts.down_proj, h, /*accumulate=*/true);
  return balance;
}

void MoeBackward(const Ctx& cx, const MoeWeights& w, const MoeWeights& gw, const float* x, const MoeActs& s,
                 const float* dh, float* dx) {
  const ModelConfig& c = cx.c;
  const int64_t N = cx.N, C = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  Vec dweights = Zeros(N * K);
  std::vector<Vec> dxe(static_cast<size_t>(E));  // per expert: gradient wrt its gathered inputs
  // The same tasks as the forward; dx gets the shared expert's part in its task and the routed
  // experts' parts in expert order after.
#pragma omp parallel
  {
    Vec dye;
#pragma omp for schedule(dynamic, 1)
    for (size_t i = 0; i < s.order.size(); ++i) {
      const int64_t e = s.order[i];
      if (e == kSharedTask) {
        MlpBackward(w.shared_experts, gw.shared_experts, x, N, s.shared, dh, dx);
        continue;
      }
      const auto& slot = s.slots[e];
      const int64_t n = static_cast<int64_t>(slot.size());
      dye.resize(static_cast<size_t>(n * C));  // assigned whole below
      for (int64_t j = 0; j < n; ++j) {
        const float* d = dh + (slot[j] / K) * C;
        const float g = s.wts[slot[j]];
        double dot = 0.0;  // ∂L/∂w_k = <dh, FFN_k(x)>
        for (int64_t i = 0; i < C; ++i) {
          dye[j * C + i] = g * d[i];
          dot += static_cast<double>(d[i]) * s.ye[e][j * C + i];
        }
        dweights[slot[j]] = static_cast<float>(dot);
      }
      dxe[e] = Uninit(n * C);
      MlpBackward(w.experts[e], gw.experts[e], s.xe[e].data(), n, s.expert[e], dye.data(), dxe[e].data(),
                  /*accumulate_dx=*/false);
    }
  }
  ScatterAddExperts(s, N, K, C, dxe, /*weighted=*/false, dx);
  const k::RouterParams rp{E, K, c.n_group, c.topk_group, c.norm_topk_prob, static_cast<float>(c.routed_scaling_factor)};
  Vec dscores = s.dscores, dlogits = Zeros(N * E);
  k::RouteV3Backward(s.scores.data(), s.idx.data(), dweights.data(), N, rp, dscores.data());
  k::SigmoidBackward(s.scores.data(), dscores.data(), N * E, dlogits.data());
  k::MatMulBackward(x, N, w.gate, dlogits.data(), dx, G(gw.gate));
}

// ---- Transformer block ---------------------------------------------------------------------------

struct BlockActs {
  Vec h_in, rstd1, x1;  // block input, its norm
  AttnActs attn;
  Vec h_mid, rstd2, x2;
  MlpActs mlp;
  MoeActs moe;
};

// h (N, C) → h + attn(norm(h)) → + ffn(norm(·)). Returns the balance loss of an MoE block.
double BlockForward(const Ctx& cx, const LayerWeights& w, Vec& h, BlockActs& s, std::vector<int64_t>* load) {
  const int64_t N = cx.N, C = cx.c.hidden_size;
  s.h_in = h;
  s.x1 = Uninit(N * C);
  s.rstd1 = Uninit(N);
  k::RmsNorm(h.data(), w.input_layernorm, N, C, cx.eps, s.x1.data(), s.rstd1.data());
  AttnForward(cx, w.attn, s.x1.data(), h.data(), s.attn);
  s.h_mid = h;
  s.x2 = Uninit(N * C);
  s.rstd2 = Uninit(N);
  k::RmsNorm(h.data(), w.post_attention_layernorm, N, C, cx.eps, s.x2.data(), s.rstd2.data());
  if (w.is_moe) return MoeForward(cx, w.moe, s.x2.data(), h.data(), s.moe, *load);
  MlpForward(w.mlp, s.x2.data(), N, h.data(), /*accumulate=*/true, s.mlp);
  return 0.0;
}

// dh: in, the gradient wrt the block output; out, wrt its input.
void BlockBackward(const Ctx& cx, const LayerWeights& w, const LayerWeights& gw, const BlockActs& s, Vec& dh) {
  const int64_t N = cx.N, C = cx.c.hidden_size;
  Vec dx2 = Zeros(N * C);
  if (w.is_moe) MoeBackward(cx, w.moe, gw.moe, s.x2.data(), s.moe, dh.data(), dx2.data());
  else MlpBackward(w.mlp, gw.mlp, s.x2.data(), N, s.mlp, dh.data(), dx2.data());
  k::RmsNormBackward(s.h_mid.data(), w.post_attention_layernorm, s.rstd2.data(), dx2.data(), N, C, dh.data(),
                     G(gw.post_attention_layernorm));
  Vec dx1 = Zeros(N * C);
  AttnBackward(cx, w.attn, gw.attn, s.x1.data(), s.attn, dh.data(), dx1.data());
  k::RmsNormBackward(s.h_in.data(), w.input_layernorm, s.rstd1.data(), dx1.data(), N, C, dh.data(),
                     G(gw.input_layernorm));
}

}  // namespace

std::vector<int32_t> DocumentPositions(const TrainBatch& batch) {
  std::vector<int32_t> pos(batch.ids.size());
  for (int64_t b = 0; b < batch.B; ++b) {
    int32_t p = 0;
    for (int64_t t = 0; t < batch.T; ++t) {
      const int64_t i = b * batch.T + t;
      if (t > 0 && batch.doc[i] != batch.doc[i - 1]) p = 0;
      pos[i] = p++;
    }
  }
  return pos;
}

LossReport TrainForwardBackward(const ModelConfig& c, const ModelWeights& w, ModelWeights* grads,
                                const TrainBatch& batch, const LossOptions& opts, float grad_scale) {
  const int64_t B = batch.B, T = batch.T, N = B * T, C = c.hidden_size, V = c.vocab_size;
  R1_CHECK(static_cast<int64_t>(batch.ids.size()) == N && batch.targets.size() == batch.ids.size() &&
           batch.doc.size() == batch.ids.size());
  const std::vector<int32_t> pos = DocumentPositions(batch);
  const k::RopeParams rope = c.Rope();
  Ctx cx{c, B, T, N, pos, batch.doc, k::RopeInvFreq(rope), k::RopeAttentionFactor(rope), c.SoftmaxScale(),
         static_cast<float>(c.rms_norm_eps), opts, grad_scale, grads != nullptr};
  LossReport rep;

  // ---- forward: main model
  Vec h = Zeros(N * C);
  k::Embedding(w.embed_tokens, batch.ids.data(), N, h.data());
  std::vector<BlockActs> acts(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    std::vector<int64_t> load;
    rep.balance += BlockForward(cx, w.layers[l], h, acts[l], &load);
    if (w.layers[l].is_moe) rep.expert_load.push_back(std::move(load));
  }
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
#pragma omp parallel if (N * V >= (1 << 16))
    {
      std::vector<float> z(static_cast<size_t>(V));  // this thread's copy of z/τ
#pragma omp for schedule(static)
      for (int64_t n = 0; n < N; ++n) {
        if (batch.targets[n] < 0) continue;
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
      }
    }
    double entropy = 0.0;
    for (double h : row_entropy) entropy += h;
    rep.entropy = n_main ? entropy / static_cast<double>(n_main) : 0.0;
    rep.main = opts.token_objective(logp.data(), coef.data());
#pragma omp parallel for schedule(static) if (N * V >= (1 << 16))
    for (int64_t n = 0; n < N; ++n) {
      float* row = logits.data() + n * V;
      if (batch.targets[n] < 0) {
        std::fill(row, row + V, 0.0f);
        continue;
      }
      const float g = grad_scale * coef[n] * inv_t;
      for (int64_t v = 0; v < V; ++v) row[v] *= -g;
      row[batch.targets[n]] += g;
    }
  } else {
    // Logit distillation: KL(q ‖ p) = Σ_v q_v (log q_v − log p_v) per trained row, gradient
    // w·(p − q)/n, computed before the cross-entropy overwrites the logits and added after it.
    Vec dkl;
    const bool distill = opts.teacher_probs != nullptr && opts.distill_weight != 0.0 && n_main > 0;
    if (distill) {
      dkl = Zeros(N * V);
      const double gs = grad_scale * opts.distill_weight / static_cast<double>(n_main);
      std::vector<double> row_kl(static_cast<size_t>(N), 0.0);  // summed in row order below
#pragma omp parallel for schedule(static)
      for (int64_t n = 0; n < N; ++n) {
        if (batch.targets[n] < 0) continue;
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
      }
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
  const bool mtp = !w.mtp.empty() && !opts.token_objective;
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
    rep.balance += BlockForward(cx, m.block, xm, mtp_acts, &load);
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
  rep.loss = rep.main + rep.mtp + rep.balance;
  if (rep.distill != 0.0) rep.loss += opts.distill_weight * rep.distill;
  if (!grads) return rep;
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
  for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) BlockBackward(cx, w.layers[l], g.layers[l], acts[l], dh);
  k::EmbeddingBackward(batch.ids.data(), N, dh.data(), C, G(g.embed_tokens));
  return rep;
}

}  // namespace r1
