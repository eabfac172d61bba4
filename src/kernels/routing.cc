#include "kernels/routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/check.h"
#include "core/threads.h"
#include "kernels/activation.h"
#include "kernels/row_sum.h"

namespace r1::kernels {

void RouteV3(const float* logits, const float* bias, int64_t T, const RouterParams& p,
             int32_t* idx, float* weights, float* scores) {
  const int64_t E = p.n_experts, K = p.top_k, G = p.n_group;
  R1_CHECK(E % G == 0 && p.topk_group <= G && K <= p.topk_group * (E / G))
      << "top_k " << K << " exceeds the experts of " << p.topk_group << " groups";
  const int64_t per_group = E / G;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  ParallelFor(T, T * E >= (1 << 14), [&](int64_t t) {
    // Scratch per thread, kept across calls (a decode step routes a few tokens per layer).
    thread_local std::vector<float> s, c, gscore;
    thread_local std::vector<int64_t> order;
    thread_local std::vector<char> keep;
    s.resize(static_cast<size_t>(E));
    c.resize(static_cast<size_t>(E));
    gscore.resize(static_cast<size_t>(G));
    order.resize(static_cast<size_t>(std::max(E, G)));
    for (int64_t e = 0; e < E; ++e) {
      s[e] = Sigmoid(logits[t * E + e]);
      c[e] = s[e] + (bias ? bias[e] : 0.0f);
      if (scores) scores[t * E + e] = s[e];
    }
    if (G > 1) {
      for (int64_t g = 0; g < G; ++g) {
        // Sum of the two largest choice scores of the group (one if the group has one expert).
        float a = kNegInf, b = kNegInf;
        for (int64_t e = g * per_group; e < (g + 1) * per_group; ++e) {
          if (c[e] > a) {
            b = a;
            a = c[e];
          } else if (c[e] > b) {
            b = c[e];
          }
        }
        gscore[g] = per_group >= 2 ? a + b : a;
      }
      for (int64_t g = 0; g < G; ++g) order[g] = g;
      std::partial_sort(order.begin(), order.begin() + p.topk_group, order.begin() + G,
                        [&](int64_t x, int64_t y) {
                          return gscore[x] > gscore[y] || (gscore[x] == gscore[y] && x < y);
                        });
      keep.assign(static_cast<size_t>(G), 0);
      for (int64_t i = 0; i < p.topk_group; ++i) keep[order[i]] = true;
      for (int64_t e = 0; e < E; ++e)
        if (keep[e / per_group] == 0) c[e] = kNegInf;
    }
    for (int64_t e = 0; e < E; ++e) order[e] = e;
    std::partial_sort(order.begin(), order.begin() + K, order.begin() + E,
                      [&](int64_t x, int64_t y) { return c[x] > c[y] || (c[x] == c[y] && x < y); });
    double sum = 0.0;
    for (int64_t k = 0; k < K; ++k) sum += s[order[k]];
    const double denom = p.norm_topk_prob ? sum + 1e-20 : 1.0;
    for (int64_t k = 0; k < K; ++k) {
      idx[t * K + k] = static_cast<int32_t>(order[k]);
      weights[t * K + k] =
          static_cast<float>(s[order[k]] / denom) * p.routed_scaling_factor;
    }
  });
}

void RouteV3Backward(const float* scores, const int32_t* idx, const float* dweights, int64_t T,
                     const RouterParams& p, float* dscores) {
  const int64_t E = p.n_experts, K = p.top_k;
  const double R = p.routed_scaling_factor;
  for (int64_t t = 0; t < T; ++t) {
    const float* s = scores + t * E;
    const int32_t* sel = idx + t * K;
    const float* dw = dweights + t * K;
    float* ds = dscores + t * E;
    if (!p.norm_topk_prob) {
      for (int64_t k = 0; k < K; ++k) ds[sel[k]] += static_cast<float>(R * dw[k]);
      continue;
    }
    double z = 1e-20, dot = 0.0;
    for (int64_t k = 0; k < K; ++k) z += s[sel[k]];
    for (int64_t k = 0; k < K; ++k) dot += s[sel[k]] / z * dw[k];
    for (int64_t k = 0; k < K; ++k) ds[sel[k]] += static_cast<float>(R / z * (dw[k] - dot));
  }
}

double ExpertSlotBackward(const float* dh, const float* y, float g, int64_t C, float* dy) {
#if defined(__AVX512F__)
  const __m256 vg = _mm256_set1_ps(g);
  return row_sum::RowSum(C, [&](int64_t c, int64_t n, __m512d acc) {
    const __mmask8 m = n >= 8 ? static_cast<__mmask8>(0xff) : static_cast<__mmask8>((1u << n) - 1);
    const __m256 d = _mm256_maskz_loadu_ps(m, dh + c);
    _mm256_mask_storeu_ps(dy + c, m, _mm256_mul_ps(vg, d));
    // A product of two floats is exact in double: the fused add rounds once, as a plain add would.
    return _mm512_fmadd_pd(_mm512_cvtps_pd(d), row_sum::Widen(y + c, n), acc);
  });
#else
  return row_sum::RowSum(C, [&](int64_t c, double acc) {
    dy[c] = g * dh[c];
    return std::fma(static_cast<double>(dh[c]), static_cast<double>(y[c]), acc);
  });
#endif
}

void SigmoidBackward(const float* scores, const float* dscores, int64_t n, float* dlogits) {
  for (int64_t i = 0; i < n; ++i) dlogits[i] = dscores[i] * scores[i] * (1.0f - scores[i]);
}

double BalanceLoss(const float* scores, const int32_t* idx, int64_t T, int64_t E, int64_t K, double alpha,
                   double grad_scale, float* dscores) {
  if (T == 0 || alpha == 0.0) return 0.0;
  std::vector<double> f(static_cast<size_t>(E), 0.0), P(static_cast<size_t>(E), 0.0);
  for (int64_t i = 0; i < T * K; ++i) f[idx[i]] += 1.0;
  for (auto& v : f) v *= static_cast<double>(E) / (static_cast<double>(K) * static_cast<double>(T));
  for (int64_t t = 0; t < T; ++t) {
    const float* s = scores + t * E;
    double z = 0.0;
    for (int64_t e = 0; e < E; ++e) z += s[e];
    for (int64_t e = 0; e < E; ++e) P[e] += s[e] / z / static_cast<double>(T);
    if (!dscores) continue;
    // d/ds_m of Σ_i g_i s_i/z with g_i = alpha·f_i/T: (g_m − Σ_i g_i s_i/z)/z
    double gs = 0.0;
    for (int64_t e = 0; e < E; ++e) gs += alpha * f[e] / static_cast<double>(T) * s[e] / z;
    for (int64_t e = 0; e < E; ++e)
      dscores[t * E + e] += static_cast<float>(grad_scale * (alpha * f[e] / static_cast<double>(T) - gs) / z);
  }
  double loss = 0.0;
  for (int64_t e = 0; e < E; ++e) loss += f[e] * P[e];
  return alpha * loss;
}

}  // namespace r1::kernels
