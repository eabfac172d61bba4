// Every backward kernel, twice: its double-precision form against central finite differences of
// the forward (h = 1e-6, relative error < 1e-6), and the fast f32 kernel against that reference.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/attention_ref.h"
#include "kernels/embedding.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/routing.h"

namespace r1::kernels {
namespace {

using VecD = std::vector<double>;
using VecF = std::vector<float>;

VecD Randn(int64_t n, Rng& rng, double scale = 1.0) {
  VecD v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.Normal() * scale;
  return v;
}
VecF ToF(const VecD& v) { return VecF(v.begin(), v.end()); }

// Central-difference gradient of the scalar f at x, for every coordinate.
VecD NumGrad(const std::function<double(const VecD&)>& f, VecD x, double h = 1e-6) {
  VecD g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double fp = f(x);
    x[i] = x0 - h;
    const double fm = f(x);
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

template <typename A, typename B>
double RelErr(const A& a, const B& b) {
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (static_cast<double>(a[i]) - static_cast<double>(b[i])) * (static_cast<double>(a[i]) - static_cast<double>(b[i]));
    n += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return std::sqrt(d / std::max(n, 1e-300));
}

// L = <dy, y(x)> turns a vector function into the scalar whose gradient is the backward.
double Dot(const VecD& a, const VecD& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

TEST(Backward, RmsNorm) {
  Rng rng(1);
  const int64_t T = 3, C = 7;
  const double eps = 1e-6;
  const VecD x = Randn(T * C, rng), w = Randn(C, rng), dy = Randn(T * C, rng);
  VecD dx(x.size()), dw(w.size(), 0.0);
  ref::RmsNormBackward(x.data(), w.data(), dy.data(), T, C, eps, dx.data(), dw.data());
  auto fx = [&](const VecD& xx) {
    VecD y(xx.size());
    ref::RmsNorm(xx.data(), w.data(), T, C, eps, y.data());
    return Dot(dy, y);
  };
  auto fw = [&](const VecD& ww) {
    VecD y(x.size());
    ref::RmsNorm(x.data(), ww.data(), T, C, eps, y.data());
    return Dot(dy, y);
  };
  EXPECT_LT(RelErr(dx, NumGrad(fx, x)), 1e-6);
  EXPECT_LT(RelErr(dw, NumGrad(fw, w)), 1e-6);
  // Fast kernel: dx is added to, dw added to.
  VecF xf = ToF(x), wf = ToF(w), dyf = ToF(dy), y(x.size()), rstd(T), dxf(x.size(), 0.f), dwf(C, 0.f);
  RmsNorm(xf.data(), wf.data(), T, C, static_cast<float>(eps), y.data(), rstd.data());
  RmsNormBackward(xf.data(), wf.data(), rstd.data(), dyf.data(), T, C, dxf.data(), dwf.data());
  EXPECT_LT(RelErr(dxf, dx), 1e-5);
  EXPECT_LT(RelErr(dwf, dw), 1e-5);
}

TEST(Backward, SwiGLU) {
  Rng rng(2);
  const int64_t n = 40;
  const VecD g = Randn(n, rng, 2.0), u = Randn(n, rng), d = Randn(n, rng);
  VecD dg(n), du(n);
  ref::SwiGLUBackward(g.data(), u.data(), d.data(), dg.data(), du.data(), n);
  auto fg = [&](const VecD& gg) {
    VecD y(n);
    ref::SwiGLU(gg.data(), u.data(), y.data(), n);
    return Dot(d, y);
  };
  auto fu = [&](const VecD& uu) {
    VecD y(n);
    ref::SwiGLU(g.data(), uu.data(), y.data(), n);
    return Dot(d, y);
  };
  EXPECT_LT(RelErr(dg, NumGrad(fg, g)), 1e-6);
  EXPECT_LT(RelErr(du, NumGrad(fu, u)), 1e-6);
  VecF gf = ToF(g), uf = ToF(u), df = ToF(d), dgf(n), duf(n);
  SwiGLUBackward(gf.data(), uf.data(), df.data(), dgf.data(), duf.data(), n);
  EXPECT_LT(RelErr(dgf, dg), 1e-5);
  EXPECT_LT(RelErr(duf, du), 1e-5);
}

// Attention's double reference backward for random q, k, v, dout under `mask`; with
// `finite_differences`, checked against numerical gradients of the reference forward. Then the
// fast f32 kernels (forward saving the probabilities, backward) against it.
void CheckAttentionBackward(int64_t T, int64_t S, int64_t H, int64_t Dk, int64_t Dv, double scale,
                            const AttentionMask& mask, bool finite_differences, Rng& rng, const std::string& what) {
  const VecD q = Randn(T * H * Dk, rng), k = Randn(S * H * Dk, rng), v = Randn(S * H * Dv, rng);
  const VecD dout = Randn(T * H * Dv, rng);
  VecD dq(q.size()), dk(k.size()), dv(v.size());
  ref::AttentionNaiveBackward(q.data(), k.data(), v.data(), dout.data(), T, S, H, Dk, Dv, scale, mask, dq.data(),
                              dk.data(), dv.data());
  if (finite_differences) {
    auto loss = [&](const VecD& qq, const VecD& kk, const VecD& vv) {
      VecD o(static_cast<size_t>(T * H * Dv));
      ref::AttentionNaive(qq.data(), kk.data(), vv.data(), T, S, H, Dk, Dv, scale, mask, o.data());
      return Dot(dout, o);
    };
    EXPECT_LT(RelErr(dq, NumGrad([&](const VecD& x) { return loss(x, k, v); }, q)), 1e-6) << what;
    EXPECT_LT(RelErr(dk, NumGrad([&](const VecD& x) { return loss(q, x, v); }, k)), 1e-6) << what;
    EXPECT_LT(RelErr(dv, NumGrad([&](const VecD& x) { return loss(q, k, x); }, v)), 1e-6) << what;
  }
  VecF qf = ToF(q), kf = ToF(k), vf = ToF(v), df = ToF(dout), o(T * H * Dv), probs(H * T * S);
  AttentionNaive(qf.data(), kf.data(), vf.data(), T, S, H, Dk, Dv, static_cast<float>(scale), mask, o.data(),
                 probs.data());
  VecF dqf(q.size()), dkf(k.size()), dvf(v.size());
  AttentionNaiveBackward(qf.data(), kf.data(), vf.data(), probs.data(), df.data(), T, S, H, Dk, Dv,
                         static_cast<float>(scale), mask, dqf.data(), dkf.data(), dvf.data());
  EXPECT_LT(RelErr(dqf, dq), 1e-5) << what;
  EXPECT_LT(RelErr(dkf, dk), 1e-5) << what;
  EXPECT_LT(RelErr(dvf, dv), 1e-5) << what;
}

TEST(Backward, AttentionNaiveWithDocuments) {
  Rng rng(3);
  const std::vector<int32_t> pos = {0, 1, 2, 0, 1, 2}, doc = {0, 0, 0, 1, 1, 1};
  AttentionMask mask{pos.data(), pos.data(), doc.data(), doc.data()};
  CheckAttentionBackward(6, 6, 2, 5, 4, 0.37, mask, /*finite_differences=*/true, rng, "documents");
}

// Past one 64-row block (T = 150), with causal documents and with a mask that has holes (two
// interleaved documents): the fast kernels against the reference.
void CheckAttentionDocuments(int64_t H, int64_t Dk, int64_t Dv, double scale, Rng& rng, const std::string& what) {
  const int64_t T = 150;
  for (int interleaved = 0; interleaved < 2; ++interleaved) {
    std::vector<int32_t> pos(T), doc(T);
    for (int64_t t = 0; t < T; ++t) {
      pos[t] = static_cast<int32_t>(t);
      doc[t] = interleaved ? static_cast<int32_t>(t % 2) : t < 40 ? 0 : t < 130 ? 1 : 2;
    }
    AttentionMask mask{pos.data(), pos.data(), doc.data(), doc.data()};
    CheckAttentionBackward(T, T, H, Dk, Dv, scale, mask, /*finite_differences=*/false, rng,
                           what + (interleaved ? ", interleaved documents" : ", documents"));
  }
}

// The BLAS path's 64-row blocks.
TEST(Backward, AttentionNaiveRowBlocks) {
  Rng rng(5);
  CheckAttentionDocuments(2, 12, 8, 0.29, rng, "row blocks");
}

// Head widths that are multiples of 16 (the 16-lane tiles with AVX-512): a GRPO update's segment
// (queries continuing a prefix of keys, T < S), by finite differences at a small size and against
// the reference; then documents and holes.
TEST(Backward, AttentionNaiveTiles) {
  Rng rng(11);
  {
    const int64_t T = 6, S = 9;
    std::vector<int32_t> q_pos(T);
    for (int64_t t = 0; t < T; ++t) q_pos[t] = static_cast<int32_t>(S - T + t);
    AttentionMask mask{q_pos.data(), nullptr, nullptr, nullptr};
    CheckAttentionBackward(T, S, 2, 16, 16, 0.41, mask, /*finite_differences=*/true, rng, "prefix, small");
  }
  {
    const int64_t T = 61, S = 74;
    std::vector<int32_t> q_pos(T);
    for (int64_t t = 0; t < T; ++t) q_pos[t] = static_cast<int32_t>(S - T + t);
    AttentionMask mask{q_pos.data(), nullptr, nullptr, nullptr};
    CheckAttentionBackward(T, S, 4, 48, 32, 0.14, mask, /*finite_differences=*/false, rng, "prefix");
  }
  CheckAttentionDocuments(3, 32, 80, 0.2, rng, "tiles");
}

TEST(Backward, RopeInverseIsTheTranspose) {
  // RoPE is linear: <dy, R x> = <Rᵀ dy, x>; the backward (inverse rotation, same factor) is Rᵀ.
  Rng rng(4);
  const int64_t T = 5, H = 3, D = 8;
  RopeParams p;
  p.dim = D;
  p.yarn = true;
  p.factor = 4;
  p.original_max_position = 16;
  p.mscale = 0.9;
  p.mscale_all_dim = 1.0;
  const VecF inv = RopeInvFreq(p);
  const float af = RopeAttentionFactor(p);
  std::vector<int32_t> pos = {0, 3, 7, 20, 63};
  VecF x = ToF(Randn(T * H * D, rng)), dy = ToF(Randn(T * H * D, rng));
  VecF rx = x, rtdy = dy;
  RopeInterleaved(rx.data(), T, H, H * D, D, pos.data(), inv.data(), D, af);
  RopeInterleaved(rtdy.data(), T, H, H * D, D, pos.data(), inv.data(), D, af, /*inverse=*/true);
  double a = 0, b = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    a += static_cast<double>(dy[i]) * rx[i];
    b += static_cast<double>(rtdy[i]) * x[i];
  }
  EXPECT_NEAR(a, b, 1e-5 * std::fabs(a));
}

TEST(Backward, MatMulAndEmbedding) {
  Rng rng(5);
  const int64_t T = 4, N = 6, K = 9, V = 5;
  const VecD x = Randn(T * K, rng), w = Randn(N * K, rng), dy = Randn(T * N, rng);
  VecF xf = ToF(x), wf = ToF(w), dyf = ToF(dy), dxf(T * K, 0.f), dwf(N * K, 0.f);
  TensorView wv{wf.data(), DType::kF32, Shape{N, K}, nullptr};
  MatMulBackward(xf.data(), T, wv, dyf.data(), dxf.data(), dwf.data());
  auto loss = [&](const VecD& xx, const VecD& ww) {
    double s = 0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) {
        double y = 0;
        for (int64_t k = 0; k < K; ++k) y += xx[t * K + k] * ww[n * K + k];
        s += dy[t * N + n] * y;
      }
    return s;
  };
  EXPECT_LT(RelErr(dxf, NumGrad([&](const VecD& v) { return loss(v, w); }, x)), 1e-5);
  EXPECT_LT(RelErr(dwf, NumGrad([&](const VecD& v) { return loss(x, v); }, w)), 1e-5);
  // Embedding: a repeated id accumulates.
  const std::vector<int32_t> ids = {1, 3, 1, 4};
  VecF d = ToF(Randn(4 * 3, rng)), table(V * 3, 0.f);
  EmbeddingBackward(ids.data(), 4, d.data(), 3, table.data());
  for (int c = 0; c < 3; ++c) {
    EXPECT_FLOAT_EQ(table[1 * 3 + c], d[0 * 3 + c] + d[2 * 3 + c]);
    EXPECT_FLOAT_EQ(table[0 * 3 + c], 0.0f);
  }
}

TEST(Backward, CrossEntropy) {
  Rng rng(6);
  const int64_t T = 3, V = 7;
  const VecD logits = Randn(T * V, rng, 2.0);
  const std::vector<int32_t> targets = {2, -1, 6};
  auto loss = [&](const VecD& z) {
    double s = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (targets[t] < 0) continue;
      double m = -1e300, sum = 0;
      for (int64_t v = 0; v < V; ++v) m = std::max(m, z[t * V + v]);
      for (int64_t v = 0; v < V; ++v) sum += std::exp(z[t * V + v] - m);
      s += m + std::log(sum) - z[t * V + targets[t]];
    }
    return s * 0.5;  // grad_scale 0.5
  };
  VecF g = ToF(logits);
  int64_t n = 0;
  const double total = CrossEntropyForwardBackward(g.data(), targets.data(), T, V, 0.5f, &n);
  EXPECT_EQ(n, 2);
  EXPECT_NEAR(total * 0.5, loss(logits), 1e-5);
  EXPECT_LT(RelErr(g, NumGrad(loss, logits)), 1e-5);
}

// Routing weights and the balance loss in double, for finite differences of their backward.
struct RouteProblem {
  int64_t T = 3, E = 8, K = 2;
  RouterParams p{8, 2, 4, 2, true, 2.5f};
  VecD logits;
  VecF bias;
  std::vector<int32_t> idx;  // fixed selection (from the f32 forward)
};

// Σ_t Σ_k dw[t,k]·w[t,k](logits) with the selection held fixed.
double WeightLoss(const RouteProblem& r, const VecD& logits, const VecD& dw, bool norm) {
  double s = 0;
  for (int64_t t = 0; t < r.T; ++t) {
    double z = 1e-20;
    VecD sc(static_cast<size_t>(r.K));
    for (int64_t k = 0; k < r.K; ++k) {
      sc[k] = 1.0 / (1.0 + std::exp(-logits[t * r.E + r.idx[t * r.K + k]]));
      z += sc[k];
    }
    for (int64_t k = 0; k < r.K; ++k) s += dw[t * r.K + k] * r.p.routed_scaling_factor * (norm ? sc[k] / z : sc[k]);
  }
  return s;
}

TEST(Backward, RoutingWeightsNormalizedAndNot) {
  for (bool norm : {true, false}) {
    Rng rng(7);
    RouteProblem r;
    r.p.norm_topk_prob = norm;
    r.logits = Randn(r.T * r.E, rng);
    r.bias = ToF(Randn(r.E, rng, 0.3));
    VecF lf = ToF(r.logits), w(r.T * r.K), scores(r.T * r.E);
    r.idx.assign(static_cast<size_t>(r.T * r.K), 0);
    RouteV3(lf.data(), r.bias.data(), r.T, r.p, r.idx.data(), w.data(), scores.data());
    const VecD dw = Randn(r.T * r.K, rng);
    VecF dwf = ToF(dw), ds(r.T * r.E, 0.f), dlogits(r.T * r.E);
    RouteV3Backward(scores.data(), r.idx.data(), dwf.data(), r.T, r.p, ds.data());
    SigmoidBackward(scores.data(), ds.data(), r.T * r.E, dlogits.data());
    const VecD num = NumGrad([&](const VecD& z) { return WeightLoss(r, z, dw, norm); }, r.logits);
    EXPECT_LT(RelErr(dlogits, num), 1e-5) << "norm_topk_prob " << norm;
  }
}

TEST(Backward, BalanceLoss) {
  Rng rng(8);
  const int64_t T = 5, E = 6, K = 2;
  const double alpha = 0.3;
  const VecD s = [&] {
    VecD v = Randn(T * E, rng);
    for (auto& x : v) x = 1.0 / (1.0 + std::exp(-x));
    return v;
  }();
  std::vector<int32_t> idx(T * K);
  for (int64_t t = 0; t < T; ++t) {
    idx[t * K] = static_cast<int32_t>(t % E);
    idx[t * K + 1] = static_cast<int32_t>((t + 2) % E);
  }
  VecF sf = ToF(s), ds(T * E, 0.f);
  const double loss = BalanceLoss(sf.data(), idx.data(), T, E, K, alpha, 1.0, ds.data());
  // f is constant; P uses scores normalized over all experts.
  auto f = [&](const VecD& sc) {
    VecD fi(E, 0.0), P(E, 0.0);
    for (int64_t i = 0; i < T * K; ++i) fi[idx[i]] += static_cast<double>(E) / (K * T);
    for (int64_t t = 0; t < T; ++t) {
      double z = 0;
      for (int64_t e = 0; e < E; ++e) z += sc[t * E + e];
      for (int64_t e = 0; e < E; ++e) P[e] += sc[t * E + e] / z / T;
    }
    return alpha * Dot(fi, P);
  };
  EXPECT_NEAR(loss, f(s), 1e-6);
  EXPECT_LT(RelErr(ds, NumGrad(f, s)), 1e-5);
}

}  // namespace
}  // namespace r1::kernels
