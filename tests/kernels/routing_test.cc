// RouteV3 against an independent scalar implementation of spec §5.2 written here (selection by
// repeated arg-max rather than sorting), plus hand-worked cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "kernels/routing.h"
#include "test_util.h"

namespace r1::kernels {
namespace {

using testing::RandomVec;

struct Routed {
  std::vector<int32_t> idx;
  std::vector<double> w;
};

// Index of the largest value among those with ok[i]; ties go to the lowest index.
int64_t ArgMax(const std::vector<double>& v, const std::vector<bool>& ok) {
  int64_t best = -1;
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i)
    if (ok[i] && (best < 0 || v[i] > v[best])) best = i;
  return best;
}

// Spec §5.2, one token, in double.
Routed RouteOne(const float* logits, const float* bias, const RouterParams& p) {
  const int64_t E = p.n_experts, G = p.n_group, per = E / G;
  std::vector<double> s(E), c(E);
  for (int64_t e = 0; e < E; ++e) {
    s[e] = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[e])));
    c[e] = s[e] + (bias ? bias[e] : 0.0);
  }
  // Group score: the sum of the top-2 c of each group (the one c for singleton groups).
  std::vector<double> gscore(G);
  for (int64_t g = 0; g < G; ++g) {
    std::vector<double> m(c.begin() + g * per, c.begin() + (g + 1) * per);
    std::sort(m.rbegin(), m.rend());
    gscore[g] = m[0] + (per > 1 ? m[1] : 0.0);
  }
  std::vector<bool> group_ok(G, true), kept(G, false);
  for (int64_t i = 0; i < p.topk_group; ++i) {
    const int64_t g = ArgMax(gscore, group_ok);
    group_ok[g] = false;
    kept[g] = true;
  }
  std::vector<double> masked = c;
  for (int64_t e = 0; e < E; ++e)
    if (!kept[e / per]) masked[e] = -std::numeric_limits<double>::infinity();
  std::vector<bool> ok(E, true);
  Routed r;
  double sum = 0;
  for (int64_t k = 0; k < p.top_k; ++k) {
    const int64_t e = ArgMax(masked, ok);
    ok[e] = false;
    r.idx.push_back(static_cast<int32_t>(e));
    sum += s[e];
  }
  for (int32_t e : r.idx)
    r.w.push_back((p.norm_topk_prob ? s[e] / (sum + 1e-20) : s[e]) * p.routed_scaling_factor);
  return r;
}

void ExpectRoutesLikeScalar(const std::vector<float>& logits, const std::vector<float>* bias,
                            int64_t T, const RouterParams& p, const char* what) {
  const int64_t E = p.n_experts, K = p.top_k;
  std::vector<int32_t> idx(T * K);
  std::vector<float> w(T * K), scores(T * E);
  RouteV3(logits.data(), bias ? bias->data() : nullptr, T, p, idx.data(), w.data(), scores.data());
  for (int64_t t = 0; t < T; ++t) {
    const Routed r = RouteOne(logits.data() + t * E, bias ? bias->data() : nullptr, p);
    for (int64_t k = 0; k < K; ++k) {
      ASSERT_EQ(idx[t * K + k], r.idx[k]) << what << " token " << t << " slot " << k;
      // f32 sigmoid and sum vs double: a few ulp.
      EXPECT_NEAR(w[t * K + k], r.w[k], 1e-6 * std::fabs(r.w[k]) + 1e-30) << what << " token " << t;
    }
    for (int64_t e = 0; e < E; ++e)
      EXPECT_NEAR(scores[t * E + e], 1.0 / (1.0 + std::exp(-static_cast<double>(logits[t * E + e]))), 1e-7);
  }
}

TEST(RouteV3, V3ShapeMatchesScalar) {
  Rng rng(12);
  RouterParams p{256, 8, 8, 4, true, 2.5f};
  const int64_t T = 16;
  const auto logits = RandomVec(rng, T * 256, 2.0);
  auto bias = RandomVec(rng, 256, 0.3);
  ExpectRoutesLikeScalar(logits, nullptr, T, p, "V3 no bias");
  ExpectRoutesLikeScalar(logits, &bias, T, p, "V3 bias");
  // Weights are normalized to routed_scaling_factor.
  std::vector<int32_t> idx(T * 8);
  std::vector<float> w(T * 8);
  RouteV3(logits.data(), bias.data(), T, p, idx.data(), w.data());
  for (int64_t t = 0; t < T; ++t) {
    double s = 0;
    std::set<int32_t> groups;
    for (int k = 0; k < 8; ++k) {
      s += w[t * 8 + k];
      groups.insert(idx[t * 8 + k] / 32);
    }
    EXPECT_NEAR(s, 2.5, 1e-5);
    EXPECT_LE(groups.size(), 4u);  // at most topk_group groups used
  }
}

TEST(RouteV3, VariantsMatchScalar) {
  Rng rng(13);
  const int64_t T = 8;
  {  // one group: plain top-k
    RouterParams p{64, 6, 1, 1, true, 1.0f};
    const auto logits = RandomVec(rng, T * 64);
    auto bias = RandomVec(rng, 64, 0.5);
    ExpectRoutesLikeScalar(logits, &bias, T, p, "n_group=1");
  }
  {  // singleton groups: group score is the single c
    RouterParams p{8, 2, 8, 3, true, 2.5f};
    const auto logits = RandomVec(rng, T * 8);
    auto bias = RandomVec(rng, 8, 0.5);
    ExpectRoutesLikeScalar(logits, &bias, T, p, "groups of 1");
  }
  {  // unnormalized weights
    RouterParams p{32, 4, 4, 2, false, 2.5f};
    const auto logits = RandomVec(rng, T * 32);
    auto bias = RandomVec(rng, 32, 0.5);
    ExpectRoutesLikeScalar(logits, &bias, T, p, "norm_topk_prob=false");
  }
}

// s = sigmoid(logits) = [0.75, 0.25, 0.5, 0.9]; groups {0,1} (score 1.0) and {2,3} (score 1.4).
TEST(RouteV3, HandWorked) {
  const std::vector<float> logits = {std::log(3.0f), -std::log(3.0f), 0.0f, std::log(9.0f)};
  int32_t idx[2];
  float w[2];
  RouterParams p{4, 2, 2, 1, true, 2.5f};
  RouteV3(logits.data(), nullptr, 1, p, idx, w);
  EXPECT_EQ(idx[0], 3);
  EXPECT_EQ(idx[1], 2);
  EXPECT_NEAR(w[0], 2.5 * 0.9 / 1.4, 1e-6);
  EXPECT_NEAR(w[1], 2.5 * 0.5 / 1.4, 1e-6);
  // Without the group limit expert 0 (0.75) beats expert 2 (0.5).
  RouterParams flat{4, 2, 1, 1, true, 2.5f};
  RouteV3(logits.data(), nullptr, 1, flat, idx, w);
  EXPECT_EQ(idx[0], 3);
  EXPECT_EQ(idx[1], 0);
  EXPECT_NEAR(w[0], 2.5 * 0.9 / 1.65, 1e-6);
  EXPECT_NEAR(w[1], 2.5 * 0.75 / 1.65, 1e-6);
  // Bias [0, 0, +0.5, −0.5]: c = [0.75, 0.25, 1.0, 0.4]; group scores 1.0 vs 1.4 keep {2,3};
  // the bias reorders the selection but the weights still come from the unbiased s.
  const std::vector<float> bias = {0.0f, 0.0f, 0.5f, -0.5f};
  RouteV3(logits.data(), bias.data(), 1, p, idx, w);
  EXPECT_EQ(idx[0], 2);
  EXPECT_EQ(idx[1], 3);
  EXPECT_NEAR(w[0], 2.5 * 0.5 / 1.4, 1e-6);
  EXPECT_NEAR(w[1], 2.5 * 0.9 / 1.4, 1e-6);
}

// A bias that changes which experts are chosen must not change how chosen experts are weighted.
TEST(RouteV3, BiasSelectsButDoesNotWeigh) {
  // s = [0.9, 0.8, 0.7, 0.6]; top-2 without bias = {0, 1}; with bias +1 on 2 and 3 = {2, 3}.
  std::vector<float> logits;
  for (double s : {0.9, 0.8, 0.7, 0.6}) logits.push_back(static_cast<float>(std::log(s / (1 - s))));
  const std::vector<float> bias = {0.0f, 0.0f, 1.0f, 1.0f};
  RouterParams p{4, 2, 1, 1, true, 1.0f};
  int32_t idx[2];
  float w[2];
  RouteV3(logits.data(), nullptr, 1, p, idx, w);
  EXPECT_EQ(idx[0], 0);
  EXPECT_EQ(idx[1], 1);
  RouteV3(logits.data(), bias.data(), 1, p, idx, w);
  EXPECT_EQ(idx[0], 2);
  EXPECT_EQ(idx[1], 3);
  EXPECT_NEAR(w[0], 0.7 / 1.3, 1e-6);  // not (0.7 + 1) / 3.3
  EXPECT_NEAR(w[1], 0.6 / 1.3, 1e-6);
  p.norm_topk_prob = false;
  p.routed_scaling_factor = 2.0f;
  RouteV3(logits.data(), bias.data(), 1, p, idx, w);
  EXPECT_NEAR(w[0], 2 * 0.7, 1e-6);
  EXPECT_NEAR(w[1], 2 * 0.6, 1e-6);
}

// Experts of dropped groups are masked with −inf, not 0 (spec §11 item 4): with every c
// negative, a 0-mask would route to the dropped groups.
TEST(RouteV3, DroppedGroupsMaskedWithNegInf) {
  Rng rng(14);
  RouterParams p{16, 4, 4, 1, true, 1.0f};
  const auto logits = RandomVec(rng, 16);
  const std::vector<float> bias(16, -2.0f);  // c = s − 2 < 0
  int32_t idx[4];
  float w[4];
  RouteV3(logits.data(), bias.data(), 1, p, idx, w);
  const int32_t g = idx[0] / 4;
  for (int k = 0; k < 4; ++k) EXPECT_EQ(idx[k] / 4, g) << "expert " << idx[k] << " outside kept group " << g;
  ExpectRoutesLikeScalar(logits, &bias, 1, p, "negative c");
}

// The MoE backward's per-slot step: dy = g·dh bit for bit, and <dh, y> against a long double sum,
// for row lengths with and without a tail of the 8-double vectors; the same call gives the same bits.
TEST(ExpertSlotBackward, ScalesAndDots) {
  Rng rng(8);
  for (int64_t C : {1, 7, 8, 9, 16, 17, 256, 300}) {
    const auto dh = RandomVec(rng, C), y = RandomVec(rng, C, 3.0);
    const float g = 0.37f;
    std::vector<float> dy(static_cast<size_t>(C) + 1, -7.0f);
    const double dot = ExpertSlotBackward(dh.data(), y.data(), g, C, dy.data());
    long double want = 0, mag = 0;
    for (int64_t c = 0; c < C; ++c) {
      EXPECT_EQ(dy[c], g * dh[c]) << "C " << C << " column " << c;
      want += static_cast<long double>(dh[c]) * y[c];
      mag += std::fabs(static_cast<long double>(dh[c]) * y[c]);
    }
    EXPECT_EQ(dy[C], -7.0f) << "C " << C << ": written past the row";
    EXPECT_NEAR(dot, static_cast<double>(want), 1e-15 * static_cast<double>(mag)) << "C " << C;
    std::vector<float> again(static_cast<size_t>(C));
    EXPECT_EQ(ExpertSlotBackward(dh.data(), y.data(), g, C, again.data()), dot);
  }
}

}  // namespace
}  // namespace r1::kernels
