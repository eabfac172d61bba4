#include "model/deepseek_v3.h"

#include <algorithm>
#include <numeric>

#include <omp.h>

#include "core/log.h"
#include "core/threads.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/routing.h"

namespace r1 {

namespace k = kernels;

Result<std::unique_ptr<DeepSeekV3>> DeepSeekV3::Load(const std::string& dir, const io::LoadOptions& opts) {
  R1_ASSIGN_OR_RETURN(std::unique_ptr<io::Checkpoint> ck, io::Checkpoint::Open(dir, opts));
  R1_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromJson(ck->config_text(), dir + "/config.json"));
  std::shared_ptr<io::Checkpoint> shared(std::move(ck));
  R1_ASSIGN_OR_RETURN(auto weights, LoadWeights(config, shared));
  return std::make_unique<DeepSeekV3>(std::move(config), std::move(weights));
}

DeepSeekV3::DeepSeekV3(ModelConfig config, std::unique_ptr<ModelWeights> weights)
    : config_(std::move(config)), weights_(std::move(weights)) {
  const k::RopeParams rope = config_.Rope();
  inv_freq_ = k::RopeInvFreq(rope);
  rope_attention_factor_ = k::RopeAttentionFactor(rope);
  softmax_scale_ = config_.SoftmaxScale();
}

double DeepSeekV3::DecodeMatrixBytes(RoutedExperts experts) const {
  auto mlp = [](const MlpWeights& m) {
    return static_cast<double>(m.gate_proj.nbytes() + m.up_proj.nbytes() + m.down_proj.nbytes());
  };
  double b = static_cast<double>(weights_->lm_head.nbytes());
  for (const LayerWeights& lw : weights_->layers) {
    const AttentionWeights& a = lw.attn;
    for (const TensorView* v : {&a.q_a_proj, &a.q_b_proj, &a.q_proj, &a.kv_a_proj_with_mqa, &a.kv_b_proj, &a.o_proj})
      if (!v->empty()) b += static_cast<double>(v->nbytes());
    if (!lw.is_moe) {
      b += mlp(lw.mlp);
      continue;
    }
    b += static_cast<double>(lw.moe.gate.nbytes());
    double routed = 0;
    for (const MlpWeights& e : lw.moe.experts) routed += mlp(e);
    if (experts == RoutedExperts::kOneToken)
      routed = routed / static_cast<double>(lw.moe.experts.size()) * static_cast<double>(config_.num_experts_per_tok);
    b += routed;
    if (lw.moe.has_shared) b += mlp(lw.moe.shared_experts);
  }
  return b;
}

void DeepSeekV3::Product(const float* x, int64_t T, const TensorView& w, float* out, bool accumulate) const {
  Streamed(w.nbytes());
  k::MatMul(x, T, w, out, accumulate);
}

void DeepSeekV3::Products(const float* x, int64_t T, std::span<const k::SharedInputJob> jobs) const {
  for (const k::SharedInputJob& j : jobs) Streamed(j.w->nbytes());
  k::MatMulSharedInput(x, T, jobs);
}

void DeepSeekV3::QueryAndLatent(const LayerWeights& lw, const float* x, int64_t T, const int32_t* pos, float* q,
                                float* c_out, float* kpe_out) const {
  const ModelConfig& c = config_;
  const int64_t H = c.num_attention_heads, Dqk = c.qk_head_dim(), R = c.kv_lora_rank, Dr = c.qk_rope_head_dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  // The products of x: cq (T, q_lora_rank) = x · q_a_projᵀ (or q itself = x · q_projᵀ) and
  // kv (T, R + Dr) = x · kv_a_proj_with_mqaᵀ.
  const bool lora = c.q_lora_rank > 0;
  ScratchVector<float> cq(static_cast<size_t>(lora ? T * c.q_lora_rank : 0)), kv(static_cast<size_t>(T * (R + Dr)));
  const k::SharedInputJob of_x[2] = {{lora ? &lw.attn.q_a_proj : &lw.attn.q_proj, lora ? cq.data() : q},
                                     {&lw.attn.kv_a_proj_with_mqa, kv.data()}};
  Products(x, T, of_x);
  if (lora) {  // q = RMSNorm(cq) · q_b_projᵀ
    k::RmsNorm(cq.data(), lw.attn.q_a_layernorm, T, c.q_lora_rank, eps, cq.data());
    Product(cq.data(), T, lw.attn.q_b_proj, q);
  }
  // q: (T, H, Dqk); rotate the last Dr of every head.
  k::RopeInterleaved(q + c.qk_nope_head_dim, T, H, H * Dqk, Dqk, pos, inv_freq_.data(), Dr, rope_attention_factor_);
  // c = RMSNorm(kv[:, :R]); kpe = RoPE(kv[:, R:])
  for (int64_t t = 0; t < T; ++t) {
    k::RmsNorm(kv.data() + t * (R + Dr), lw.attn.kv_a_layernorm, 1, R, eps, c_out + t * R);
    std::copy_n(kv.data() + t * (R + Dr) + R, Dr, kpe_out + t * Dr);
  }
  k::RopeInterleaved(kpe_out, T, 1, Dr, Dr, pos, inv_freq_.data(), Dr, rope_attention_factor_);
}

// = spec §3.2: per-head keys and values from the latent, full causal attention within each
// segment (the whole batch as one sequence without segments).
void DeepSeekV3::AttentionNaive(int64_t l, const float* x, int64_t T, const int32_t* pos, float* h,
                                const std::vector<Segment>& segs) const {
  const ModelConfig& c = config_;
  const LayerWeights& lw = weights_->layers[l];
  const int64_t H = c.num_attention_heads, R = c.kv_lora_rank, Dr = c.qk_rope_head_dim;
  const int64_t Dn = c.qk_nope_head_dim, Dv = c.v_head_dim, Dqk = c.qk_head_dim();
  ScratchVector<float> q(static_cast<size_t>(T * H * Dqk));
  ScratchVector<float> lat(static_cast<size_t>(T * R)), kpe(static_cast<size_t>(T * Dr));
  QueryAndLatent(lw, x, T, pos, q.data(), lat.data(), kpe.data());
  for (const Segment& sg : segs) {
    if (!sg.cache) continue;
    std::copy_n(lat.data() + sg.row0 * R, sg.n * R, sg.cache->c(l) + sg.cache->length() * R);
    std::copy_n(kpe.data() + sg.row0 * Dr, sg.n * Dr, sg.cache->kpe(l) + sg.cache->length() * Dr);
  }
  // kvb (T, H, Dn + Dv) = c · kv_b_projᵀ; k = [k_nope, kpe broadcast over heads] (T, H, Dqk)
  ScratchVector<float> kvb(static_cast<size_t>(T * H * (Dn + Dv)));
  Product(lat.data(), T, lw.attn.kv_b_proj, kvb.data());
  ScratchVector<float> key(static_cast<size_t>(T * H * Dqk)), val(static_cast<size_t>(T * H * Dv));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t hd = 0; hd < H; ++hd) {
      const float* src = kvb.data() + (t * H + hd) * (Dn + Dv);
      float* kd = key.data() + (t * H + hd) * Dqk;
      std::copy_n(src, Dn, kd);
      std::copy_n(kpe.data() + t * Dr, Dr, kd + Dn);
      std::copy_n(src + Dn, Dv, val.data() + (t * H + hd) * Dv);
    }
  ScratchVector<float> o(static_cast<size_t>(T * H * Dv));
  auto attend = [&](int64_t r0, int64_t n) {
    const k::AttentionMask mask{pos + r0, pos + r0, nullptr, nullptr};
    k::AttentionNaive(q.data() + r0 * H * Dqk, key.data() + r0 * H * Dqk, val.data() + r0 * H * Dv, n, n, H, Dqk, Dv,
                      softmax_scale_, mask, o.data() + r0 * H * Dv);
  };
  if (segs.empty()) attend(0, T);
  for (const Segment& sg : segs) attend(sg.row0, sg.n);
  Product(o.data(), T, lw.attn.o_proj, h, /*accumulate=*/true);
}

// = spec §3.3: attention against the latent cache, kv_b_proj absorbed into query and output.
void DeepSeekV3::AttentionAbsorbed(int64_t l, const float* x, int64_t T, const int32_t* pos, float* h,
                                   const std::vector<Segment>& segs) const {
  const ModelConfig& c = config_;
  const LayerWeights& lw = weights_->layers[l];
  const int64_t H = c.num_attention_heads, R = c.kv_lora_rank, Dr = c.qk_rope_head_dim;
  const int64_t Dn = c.qk_nope_head_dim, Dv = c.v_head_dim, Dqk = c.qk_head_dim();
  ScratchVector<float> q(static_cast<size_t>(T * H * Dqk));
  ScratchVector<float> lat(static_cast<size_t>(T * R)), kpe(static_cast<size_t>(T * Dr));
  QueryAndLatent(lw, x, T, pos, q.data(), lat.data(), kpe.data());
  // New latents and rope keys go straight to the end of each sequence's cache.
  for (const Segment& sg : segs) {
    const int64_t start = sg.cache->length();
    std::copy_n(lat.data() + sg.row0 * R, sg.n * R, sg.cache->c(l) + start * R);
    std::copy_n(kpe.data() + sg.row0 * Dr, sg.n * Dr, sg.cache->kpe(l) + start * Dr);
  }
  // q_lat (T, H, R) = W_UKᵀ q_nope; q_pe (T, H, Dr) gathered contiguous.
  ScratchVector<float> q_lat(static_cast<size_t>(T * H * R)), q_pe(static_cast<size_t>(T * H * Dr));
  k::MlaAbsorbQuery(q.data(), H * Dqk, Dqk, lw.attn.kv_b_proj, T, H, Dn, Dv, q_lat.data());
  Streamed(lw.attn.kv_b_proj.nbytes() / static_cast<size_t>(Dn + Dv) * static_cast<size_t>(Dn));  // W_UK rows
  for (int64_t i = 0; i < T * H; ++i) std::copy_n(q.data() + i * Dqk + Dn, Dr, q_pe.data() + i * Dr);
  ScratchVector<float> o_lat(static_cast<size_t>(T * H * R));
  // Sequences of a batched decode step in parallel, one thread each (a single sequence, e.g. a
  // prefill, runs its products multithreaded instead).
  const int64_t n_segs = static_cast<int64_t>(segs.size());
  ParallelFor(
      n_segs, true,
      [&](int64_t i) {
        const Segment& sg = segs[static_cast<size_t>(i)];
        const int64_t S = sg.cache->length() + sg.n;
        // The next sequence's latents and rope keys are asked for while this one computes: a step
        // touches every sequence's cache of every layer (2-3 MB a thread in the GRPO benchmark's
        // rollout), so each comes from L3 or memory.
        if (i + 1 < n_segs) {
          const Segment& nx = segs[static_cast<size_t>(i + 1)];
          const int64_t Sn = nx.cache->length();
          for (int64_t f = 0; f < Sn * R; f += 16) __builtin_prefetch(nx.cache->c(l) + f);
          for (int64_t f = 0; f < Sn * Dr; f += 16) __builtin_prefetch(nx.cache->kpe(l) + f);
        }
        k::AttentionMask mask{pos + sg.row0, nullptr, nullptr, nullptr};  // the cache's keys sit at 0..S-1
        k::AttentionLatent(q_lat.data() + sg.row0 * H * R, q_pe.data() + sg.row0 * H * Dr, sg.cache->c(l),
                           sg.cache->kpe(l), sg.n, S, H, R, Dr, softmax_scale_, mask, o_lat.data() + sg.row0 * H * R);
        Streamed(static_cast<uint64_t>(S * (R + Dr)) * sizeof(float));  // the sequence's latents and rope keys
      },
      Schedule::kDynamic);
  ScratchVector<float> o(static_cast<size_t>(T * H * Dv));
  k::MlaAbsorbOutput(o_lat.data(), lw.attn.kv_b_proj, T, H, Dn, Dv, o.data());
  Streamed(lw.attn.kv_b_proj.nbytes() / static_cast<size_t>(Dn + Dv) * static_cast<size_t>(Dv));  // W_UV rows
  Product(o.data(), T, lw.attn.o_proj, h, /*accumulate=*/true);
}

namespace {

// Copies g and u's row j (F each) to dst (2F: gate, then up).
void RecordGu(const float* g, const float* u, int64_t j, int64_t F, float* dst) {
  FfnTape::Record(g + j * F, F, dst);
  FfnTape::Record(u + j * F, F, dst + F);
}

}  // namespace

void DeepSeekV3::Mlp(const MlpWeights& w, const float* x, int64_t T, float* out, bool accumulate,
                     const FfnTapeRows& tape, int64_t l) const {
  const int64_t F = w.gate_proj.rows();
  ScratchVector<float> g(static_cast<size_t>(T * F)), u(static_cast<size_t>(T * F));
  const k::SharedInputJob gate_up[2] = {{&w.gate_proj, g.data()}, {&w.up_proj, u.data()}};
  Products(x, T, gate_up);
  if (tape.tape)
    for (int64_t t = 0; t < T; ++t)
      if (tape.rows[t] >= 0) RecordGu(g.data(), u.data(), t, F, tape.tape->gu(l, tape.rows[t]));
  k::SwiGLU(g.data(), u.data(), g.data(), T * F);
  Product(g.data(), T, w.down_proj, out, accumulate);
}

namespace {

// One expert MLP to run: n rows of input at x, output rows to y (n, C).
struct ExpertTask {
  const MlpWeights* w;
  const float* x;
  int64_t n;
  float* y;
  ScratchVector<float> g, u;
  // Recording on an FfnTape (both optional, one entry per row, null to skip the row): where row j's
  // gate and up pre-activations (2F) and its output (C) go.
  std::vector<float*> gu_to = {}, y_to = {};
};

// The tasks' gate/up products go out as one MatMulMany batch, then their down products as
// another: in a decode step these are dozens of small products, and each batch costs one
// fork/join instead of one per product. With piece > 0 every product is cut into pieces of at
// most that many rows (kMaxBatchGemv keeps them all on the GEMV, whose rows do not depend on the
// batch). Returns the weight bytes streamed, a matrix once per piece.
uint64_t RunExperts(std::vector<ExpertTask>& tasks, int64_t piece) {
  uint64_t bytes = 0;
  std::vector<k::MatMulJob> jobs;
  jobs.reserve(2 * tasks.size() * (piece > 0 ? 4 : 1));
  auto add = [&](const float* in, int64_t n, const TensorView& w, float* out) {
    const int64_t step = piece > 0 ? piece : n;
    for (int64_t r = 0; r < n; r += step) {
      jobs.push_back({in + r * w.cols(), std::min(step, n - r), &w, out + r * w.rows()});
      bytes += w.nbytes();
    }
  };
  for (ExpertTask& t : tasks) {
    const int64_t F = t.w->gate_proj.rows();
    t.g.resize(static_cast<size_t>(t.n * F));
    t.u.resize(static_cast<size_t>(t.n * F));
    const int64_t step = piece > 0 ? piece : t.n;
    for (int64_t r = 0; r < t.n; r += step) {  // each piece's gate then up: MatMulMany packs the rows once
      const int64_t n = std::min(step, t.n - r);
      add(t.x + r * t.w->gate_proj.cols(), n, t.w->gate_proj, t.g.data() + r * F);
      add(t.x + r * t.w->up_proj.cols(), n, t.w->up_proj, t.u.data() + r * F);
    }
  }
  k::MatMulMany(jobs);
  jobs.clear();
  for (ExpertTask& t : tasks) {
    const int64_t F = t.w->gate_proj.rows();
    for (size_t j = 0; j < t.gu_to.size(); ++j)  // before SwiGLU overwrites g
      if (t.gu_to[j]) RecordGu(t.g.data(), t.u.data(), static_cast<int64_t>(j), F, t.gu_to[j]);
    k::SwiGLU(t.g.data(), t.u.data(), t.g.data(), static_cast<int64_t>(t.g.size()));
    add(t.g.data(), t.n, t.w->down_proj, t.y);
  }
  k::MatMulMany(jobs);
  for (ExpertTask& t : tasks) {
    const int64_t C = t.w->down_proj.rows();
    for (size_t j = 0; j < t.y_to.size(); ++j)
      if (t.y_to[j]) FfnTape::Record(t.y + static_cast<int64_t>(j) * C, C, t.y_to[j]);
  }
  return bytes;
}

// Rows of x (C wide) for the given slots (token·K + k), gathered in slot order.
ScratchVector<float> GatherSlots(const float* x, int64_t C, int64_t K, const std::vector<int64_t>& slots) {
  ScratchVector<float> out(slots.size() * static_cast<size_t>(C));
  for (size_t j = 0; j < slots.size(); ++j) std::copy_n(x + (slots[j] / K) * C, C, out.data() + j * C);
  return out;
}

}  // namespace

ExpertExchange::ExpertExchange(int threads, int64_t experts)
    : tokens_(static_cast<size_t>(std::max(threads, 1))),
      outputs_(static_cast<size_t>(std::max<int64_t>(experts, 0))),
      failed_(static_cast<size_t>(std::max(threads, 1)), 0) {}

// = spec §5.2–5.3: route, run each selected expert on the tokens sent to it, add the weighted
// outputs (in expert order, each expert's tokens in order) and then the shared experts'.
void DeepSeekV3::Moe(int64_t l, const float* x, int64_t T, float* h, ExpertExchange* ex,
                     const FfnTapeRows& tape) const {
  const ModelConfig& c = config_;
  const MoeWeights& w = weights_->layers[l].moe;
  const int64_t C = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  ScratchVector<float> logits(static_cast<size_t>(T * E));
  Product(x, T, w.gate, logits.data());
  std::vector<int32_t> idx(static_cast<size_t>(T * K));
  ScratchVector<float> wt(static_cast<size_t>(T * K));
  k::RouterParams rp{E, K, c.n_group, c.topk_group, c.norm_topk_prob, static_cast<float>(c.routed_scaling_factor)};
  ScratchVector<float> scores(tape.tape ? static_cast<size_t>(T * E) : 0);
  k::RouteV3(logits.data(), w.e_score_correction_bias, T, rp, idx.data(), wt.data(),
             tape.tape ? scores.data() : nullptr);
  if (tape.tape)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t r = tape.rows[t];
      if (r < 0) continue;
      FfnTape::Record(scores.data() + t * E, E, tape.tape->scores(l, r));
      std::copy_n(idx.data() + t * K, K, tape.tape->idx(l, r));
      std::copy_n(wt.data() + t * K, K, tape.tape->wts(l, r));
    }
  // Where the shared experts' rows (T) and a routed expert's rows (token·K + k each) are recorded.
  auto shared_to = [&](ExpertTask& task) {
    if (!tape.tape) return;
    task.gu_to.resize(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) task.gu_to[t] = tape.rows[t] >= 0 ? tape.tape->gu(l, tape.rows[t]) : nullptr;
  };
  auto routed_to = [&](ExpertTask& task, const FfnTapeRows& rows, int64_t slot) {
    if (!rows.tape) return;
    const int64_t r = rows.rows[slot / K], k = slot % K;
    task.gu_to.push_back(r >= 0 ? rows.tape->routed_gu(l, r, k) : nullptr);
    task.y_to.push_back(r >= 0 ? rows.tape->routed_y(l, r, k) : nullptr);
  };
  // This batch's slots of each expert, kept per thread from call to call (and the tape and job lists
  // below reserved at their size): a 2-thread GRPO rollout allocated ~20 small vectors per layer and
  // step each, every allocation taking the one malloc arena's lock (KeepFreedMemoryForReuse).
  thread_local std::vector<std::vector<int64_t>> slots;
  slots.resize(static_cast<size_t>(E));
  for (std::vector<int64_t>& v : slots) v.clear();
  for (int64_t i = 0; i < T * K; ++i) slots[idx[i]].push_back(i);

  ScratchVector<float> shared_y;
  // outs[e]: expert e's output rows for this batch's slots, in slot order.
  std::vector<const float*> outs(static_cast<size_t>(E), nullptr);
  std::vector<ScratchVector<float>> local_y(ex ? 0 : static_cast<size_t>(E));
  int p = 0, P = 1;
  std::vector<int64_t> count;  // count[q·E + e]: thread q's slots of expert e
  if (ex) {
    p = omp_get_thread_num();  // DecodeBatch checked the team and the exchange
    P = ex->threads();
    // The previous layer's claims all ended before its second barrier, the next claim comes after
    // the barrier below.
    if (p == 0) ex->next_.store(0, std::memory_order_relaxed);
    ex->tokens_[p] = {x, T, idx.data(), tape};
#pragma omp barrier
    count.assign(static_cast<size_t>(P * E), 0);
    std::vector<int64_t> total(static_cast<size_t>(E), 0);
    for (int q = 0; q < P; ++q) {
      const ExpertExchange::Tokens& tq = ex->tokens_[q];
      for (int64_t i = 0; i < tq.T * K; ++i) ++count[q * E + tq.idx[i]];
    }
    for (int q = 0; q < P; ++q)
      for (int64_t e = 0; e < E; ++e) total[e] += count[q * E + e];
    // Each thread runs its own rows of the shared experts first, then claims the routed experts
    // one at a time, those with the most tokens first, until none is left: a thread with fewer
    // sequences left (the others ended at EOS), or faster experts, takes more of them. Who runs an
    // expert does not change its bits. Owners fixed in advance by token counts left a 2-thread
    // rollout spinning at the barrier below for ~8 % of its time.
    std::vector<int64_t> order;
    for (int64_t e = 0; e < E; ++e)
      if (total[e] > 0) order.push_back(e);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return total[a] > total[b]; });
    if (w.has_shared) {
      shared_y.resize(static_cast<size_t>(T * C));
      std::vector<ExpertTask> shared;
      shared.push_back({&w.shared_experts, x, T, shared_y.data(), {}, {}});
      shared_to(shared.back());
      Streamed(RunExperts(shared, k::kMaxBatchGemv));
    }
    for (;;) {
      const int64_t i = ex->next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= static_cast<int64_t>(order.size())) break;
      const int64_t e = order[static_cast<size_t>(i)];
      // Every thread's rows for e, in (thread, slot) order.
      ScratchVector<float> in(static_cast<size_t>(total[e] * C));
      ScratchVector<float>& y = ex->outputs_[e];
      y.resize(static_cast<size_t>(total[e] * C));
      std::vector<ExpertTask> one;
      one.push_back({&w.experts[e], in.data(), total[e], y.data(), {}, {}});
      if (tape.tape) {
        one.back().gu_to.reserve(static_cast<size_t>(total[e]));
        one.back().y_to.reserve(static_cast<size_t>(total[e]));
      }
      int64_t r = 0;
      for (int q2 = 0; q2 < P; ++q2) {
        const ExpertExchange::Tokens& tq = ex->tokens_[q2];
        for (int64_t j = 0; j < tq.T * K; ++j)
          if (tq.idx[j] == e) {
            std::copy_n(tq.x + (j / K) * C, C, in.data() + (r++) * C);
            routed_to(one.back(), tq.tape, j);
          }
      }
      Streamed(RunExperts(one, k::kMaxBatchGemv));
    }
  } else {
    std::vector<ExpertTask> tasks;
    std::vector<ScratchVector<float>> inputs;  // gathered rows of the routed tasks
    for (int64_t e = 0; e < E; ++e) {
      if (slots[e].empty()) continue;
      inputs.push_back(GatherSlots(x, C, K, slots[e]));
      local_y[e].resize(slots[e].size() * static_cast<size_t>(C));
      outs[e] = local_y[e].data();
      tasks.push_back(
          {&w.experts[e], inputs.back().data(), static_cast<int64_t>(slots[e].size()), local_y[e].data(), {}, {}});
      for (const int64_t slot : slots[e]) routed_to(tasks.back(), tape, slot);
    }
    if (w.has_shared) {
      shared_y.resize(static_cast<size_t>(T * C));
      tasks.push_back({&w.shared_experts, x, T, shared_y.data(), {}, {}});
      shared_to(tasks.back());
    }
    Streamed(RunExperts(tasks, 0));
  }
  if (ex) {
#pragma omp barrier
    for (int64_t e = 0; e < E; ++e) {
      int64_t before = 0;  // rows of e from the threads before this one
      for (int q = 0; q < p; ++q) before += count[q * E + e];
      if (!slots[e].empty()) outs[e] = ex->outputs_[e].data() + before * C;
    }
  }
  for (int64_t e = 0; e < E; ++e) {
    for (size_t j = 0; j < slots[e].size(); ++j) {
      const int64_t s = slots[e][j];
      const float g = wt[s];
      const float* y = outs[e] + static_cast<int64_t>(j) * C;
      float* dst = h + (s / K) * C;
      for (int64_t i = 0; i < C; ++i) dst[i] += g * y[i];
    }
  }
  if (w.has_shared)
    for (int64_t i = 0; i < T * C; ++i) h[i] += shared_y[i];
}

void DeepSeekV3::FeedForward(int64_t l, const float* x, int64_t T, float* h, ExpertExchange* ex,
                             const FfnTapeRows& tape) const {
  const LayerWeights& lw = weights_->layers[l];
  if (lw.is_moe)
    Moe(l, x, T, h, ex, tape);
  else
    Mlp(lw.mlp, x, T, h, /*accumulate=*/true, tape, l);
  if (!tape.tape) return;
  const int64_t C = config_.hidden_size;
  for (int64_t t = 0; t < T; ++t)
    if (tape.rows[t] >= 0) FfnTape::Record(h + t * C, C, tape.tape->h_out(l, tape.rows[t]));
  FfnTape::Fence();
}

void DeepSeekV3::Run(const int32_t* ids, int64_t T, const int32_t* pos, bool absorbed, const std::vector<Segment>& segs,
                     float* logits, bool last_only, ExpertExchange* ex, const FfnTapeRows& tape) const {
  const ModelConfig& c = config_;
  const int64_t C = c.hidden_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  ScratchVector<float> h(static_cast<size_t>(T * C)), x(static_cast<size_t>(T * C));
  k::Embedding(weights_->embed_tokens, ids, T, h.data());
  Streamed(weights_->embed_tokens.nbytes() / static_cast<size_t>(weights_->embed_tokens.rows()) * static_cast<size_t>(T));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& lw = weights_->layers[l];
    k::RmsNorm(h.data(), lw.input_layernorm, T, C, eps, x.data());
    if (absorbed)
      AttentionAbsorbed(l, x.data(), T, pos, h.data(), segs);
    else
      AttentionNaive(l, x.data(), T, pos, h.data(), segs);
    k::RmsNorm(h.data(), lw.post_attention_layernorm, T, C, eps, x.data());
    FeedForward(l, x.data(), T, h.data(), ex, tape);
  }
  for (const Segment& sg : segs)
    if (sg.cache) sg.cache->Advance(sg.n);
  if (!last_only) {
    k::RmsNorm(h.data(), weights_->norm, T, C, eps, x.data());
    Product(x.data(), T, weights_->lm_head, logits);
    return;
  }
  // The last row of every segment.
  const int64_t n = static_cast<int64_t>(segs.size());
  for (int64_t i = 0; i < n; ++i)
    k::RmsNorm(h.data() + (segs[i].row0 + segs[i].n - 1) * C, weights_->norm, 1, C, eps, x.data() + i * C);
  Product(x.data(), n, weights_->lm_head, logits);
}

void DeepSeekV3::Forward(const int32_t* ids, int64_t T, float* logits, LatentCache* cache, bool last_only,
                         const FfnTapeRows& tape) const {
  std::vector<int32_t> pos(static_cast<size_t>(T));
  std::iota(pos.begin(), pos.end(), 0);
  if (cache) R1_CHECK(cache->length() == 0 && cache->capacity() >= T);
  std::vector<Segment> segs;
  if (cache || last_only) segs.push_back({cache, 0, T});  // one sequence; its cache may be null
  Run(ids, T, pos.data(), /*absorbed=*/false, segs, logits, last_only, nullptr, tape);
}

Status DeepSeekV3::CheckAppend(const LatentCache& cache, int64_t n) const {
  const int64_t need = cache.length() + n;
  if (need > cache.capacity())
    return OutOfRange("the sequence needs " + std::to_string(need) + " positions but the cache holds " +
                      std::to_string(cache.capacity()));
  if (need > config_.max_position_embeddings)
    return OutOfRange("the sequence needs " + std::to_string(need) +
                      " positions, over the model's max_position_embeddings " +
                      std::to_string(config_.max_position_embeddings));
  return Status::Ok();
}

namespace {
Status CheckIds(const int32_t* ids, int64_t n, int64_t vocab) {
  for (int64_t t = 0; t < n; ++t)
    if (ids[t] < 0 || ids[t] >= vocab)
      return InvalidArgument("token id " + std::to_string(ids[t]) + " is outside the vocabulary (" +
                             std::to_string(vocab) + ")");
  return Status::Ok();
}
}  // namespace

Status DeepSeekV3::Decode(const int32_t* ids, int64_t T, LatentCache* cache, float* logits, bool last_only) const {
  R1_RETURN_IF_ERROR(CheckAppend(*cache, T));
  R1_RETURN_IF_ERROR(CheckIds(ids, T, config_.vocab_size));
  const int64_t start = cache->length();
  std::vector<int32_t> pos(static_cast<size_t>(T));
  std::iota(pos.begin(), pos.end(), static_cast<int32_t>(start));
  Run(ids, T, pos.data(), /*absorbed=*/true, {Segment{cache, 0, T}}, logits, last_only);
  return Status::Ok();
}

Status DeepSeekV3::DecodeBatch(const int32_t* ids, int64_t B, LatentCache* const* caches, float* logits,
                               ExpertExchange* exchange, const FfnTapeRows& tape) const {
  std::vector<int32_t> pos(static_cast<size_t>(B));
  std::vector<Segment> segs;
  auto check = [&]() -> Status {
    R1_RETURN_IF_ERROR(CheckIds(ids, B, config_.vocab_size));
    for (int64_t b = 0; b < B; ++b) {
      R1_RETURN_IF_ERROR(CheckAppend(*caches[b], 1).WithContext("sequence " + std::to_string(b)));
      for (int64_t j = 0; j < b; ++j)
        if (caches[j] == caches[b]) return InvalidArgument("DecodeBatch: one cache given twice");
      pos[b] = static_cast<int32_t>(caches[b]->length());
      segs.push_back({caches[b], b, 1});
    }
    return Status::Ok();
  };
  Status st = check();
  if (exchange) {
    // The team goes on only if every thread's input is valid: the MoE layers wait for all of them.
    const int p = omp_get_thread_num(), P = exchange->threads();
    R1_CHECK(omp_get_num_threads() == P) << "an ExpertExchange for " << P << " threads used by a team of "
                                         << omp_get_num_threads();
    R1_CHECK(exchange->outputs_.size() == static_cast<size_t>(config_.n_routed_experts))
        << "an ExpertExchange for " << exchange->outputs_.size() << " experts used by a model with "
        << config_.n_routed_experts;
    exchange->failed_[p] = st.ok() ? 0 : 1;
#pragma omp barrier
    const bool any = std::any_of(exchange->failed_.begin(), exchange->failed_.end(), [](int f) { return f != 0; });
#pragma omp barrier
    if (any) return st.ok() ? InvalidArgument("DecodeBatch: another thread's sequences of this step are invalid") : st;
  }
  R1_RETURN_IF_ERROR(st);
  Run(ids, B, pos.data(), /*absorbed=*/true, segs, logits, /*last_only=*/false, exchange, tape);
  return Status::Ok();
}

Status DeepSeekV3::Prefill(std::span<const std::vector<int32_t>> prompts, LatentCache* const* caches, float* logits,
                           const FfnTapeRows& tape) const {
  std::vector<int32_t> ids, pos;
  std::vector<Segment> segs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<int32_t>& p = prompts[i];
    const std::string which = "prompt " + std::to_string(i);
    if (p.empty()) return InvalidArgument(which + " is empty");
    if (caches[i]->length() != 0) return InvalidArgument(which + ": its cache is not empty");
    for (size_t j = 0; j < i; ++j)
      if (caches[j] == caches[i]) return InvalidArgument("Prefill: one cache given twice");
    R1_RETURN_IF_ERROR(CheckAppend(*caches[i], static_cast<int64_t>(p.size())).WithContext(which));
    R1_RETURN_IF_ERROR(CheckIds(p.data(), static_cast<int64_t>(p.size()), config_.vocab_size).WithContext(which));
    segs.push_back({caches[i], static_cast<int64_t>(ids.size()), static_cast<int64_t>(p.size())});
    ids.insert(ids.end(), p.begin(), p.end());
    for (size_t t = 0; t < p.size(); ++t) pos.push_back(static_cast<int32_t>(t));
  }
  if (segs.empty()) return Status::Ok();
  Run(ids.data(), static_cast<int64_t>(ids.size()), pos.data(), /*absorbed=*/false, segs, logits, /*last_only=*/true,
      nullptr, tape);
  return Status::Ok();
}

}  // namespace r1
