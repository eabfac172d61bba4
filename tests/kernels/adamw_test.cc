// AdamW and the gradient's sum of squares against scalar references: the element update bit for
// bit against the documented operation order, its value against the formula in double, and the
// batched forms (AdamWStepMany, SumOfSquaresMany) against the single-tensor ones.
#include "kernels/adamw.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/threads.h"
#include "test_util.h"

namespace r1::kernels {
namespace {

using testing::RandomVec;

struct State {
  std::vector<float> p, g, m, v;
};

State RandomState(Rng& rng, int64_t n) {
  State s{RandomVec(rng, n, 0.05), RandomVec(rng, n, 1e-2), RandomVec(rng, n, 1e-3), RandomVec(rng, n, 1e-3)};
  for (float& x : s.v) x = x * x;                                         // second moments are non-negative
  for (int64_t i = 0; i < n; i += 7) s.g[static_cast<size_t>(i)] = 0.0f;  // some zero gradients
  return s;
}

// The reference: f32 operations in the order adamw.h's kernel documents, each fma one rounding.
void Reference(State& s, const AdamWParams& a) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(a.beta1), static_cast<double>(a.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(a.beta2), static_cast<double>(a.step));
  const float ib1 = static_cast<float>(1.0 / bc1), ib2 = static_cast<float>(1.0 / bc2);
  for (size_t i = 0; i < s.p.size(); ++i) {
    const float gi = s.g[i] * a.grad_scale;
    s.g[i] = 0.0f;
    s.m[i] = std::fma(s.m[i], a.beta1, (1.0f - a.beta1) * gi);
    s.v[i] = std::fma(s.v[i], a.beta2, ((1.0f - a.beta2) * gi) * gi);
    const float mh = s.m[i] * ib1, vh = s.v[i] * ib2;
    const float u = std::fma(a.weight_decay, s.p[i], mh / (std::sqrt(vh) + a.eps));
    s.p[i] = std::fma(-a.lr, u, s.p[i]);
  }
}

void ExpectSameBits(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(std::memcmp(&a[i], &b[i], sizeof(float)), 0) << what << "[" << i << "]: " << a[i] << " vs " << b[i];
}

TEST(AdamW, EveryElementMatchesTheScalarReferenceBitForBit) {
  Rng rng(11);
  // Lengths around the 16-lane vectors and the 16 Ki-element work items, and one that spans
  // several items on both threads.
  for (int64_t n : {1, 15, 16, 17, 100, 16384, 16399, 70001}) {
    for (int step : {1, 7}) {
      AdamWParams a;
      a.lr = 3e-3f;
      a.weight_decay = n % 2 ? 0.1f : 0.0f;
      a.step = step;
      a.grad_scale = step == 7 ? 0.37f : 1.0f;
      State got = RandomState(rng, n), want = got;
      AdamWStep(got.p.data(), got.g.data(), got.m.data(), got.v.data(), n, a);
      Reference(want, a);
      SCOPED_TRACE("n " + std::to_string(n) + " step " + std::to_string(step));
      ExpectSameBits(got.p, want.p, "p");
      ExpectSameBits(got.m, want.m, "m");
      ExpectSameBits(got.v, want.v, "v");
      for (float x : got.g) ASSERT_EQ(x, 0.0f);  // the gradient is consumed
    }
  }
}

TEST(AdamW, UpdateFollowsTheFormulaInDouble) {
  Rng rng(12);
  const int64_t n = 4099;
  AdamWParams a;
  a.lr = 1e-2f;
  a.weight_decay = 0.1f;
  a.step = 3;
  a.grad_scale = 0.5f;
  State s = RandomState(rng, n);
  const State before = s;
  AdamWStep(s.p.data(), s.g.data(), s.m.data(), s.v.data(), n, a);
  const double b1 = a.beta1, b2 = a.beta2;
  for (size_t i = 0; i < before.p.size(); ++i) {
    const double g = static_cast<double>(before.g[i]) * a.grad_scale;
    const double m = b1 * before.m[i] + (1 - b1) * g, v = b2 * before.v[i] + (1 - b2) * g * g;
    const double mh = m / (1 - std::pow(b1, 3)), vh = v / (1 - std::pow(b2, 3));
    const double p = before.p[i] - a.lr * (mh / (std::sqrt(vh) + a.eps) + a.weight_decay * before.p[i]);
    // Relative to the terms' size: the two terms of m cancel when m and g differ in sign.
    ASSERT_NEAR(s.m[i], m, 1e-6 * (b1 * std::fabs(before.m[i]) + (1 - b1) * std::fabs(g))) << i;
    ASSERT_NEAR(s.v[i], v, 1e-6 * std::fabs(v) + 1e-15) << i;
    // The step is lr·O(1); its f32 rounding is relative to the step, not to p.
    ASSERT_NEAR(s.p[i], p, 1e-6 * std::fabs(p) + 1e-5 * a.lr) << i;
  }
}

TEST(AdamW, ManyTensorsEqualEachAlone) {
  Rng rng(13);
  const std::vector<int64_t> sizes = {65536, 5, 20000, 1, 16384};
  std::vector<State> many, alone;
  std::vector<AdamWTensor> tensors;
  std::vector<AdamWParams> params;
  for (size_t t = 0; t < sizes.size(); ++t) {
    many.push_back(RandomState(rng, sizes[t]));
    alone.push_back(many.back());
    AdamWParams a;
    a.lr = 1e-3f * static_cast<float>(t + 1);
    a.weight_decay = t % 2 ? 0.0f : 0.05f;
    a.step = 2;
    a.grad_scale = 0.8f;
    params.push_back(a);
  }
  for (size_t t = 0; t < sizes.size(); ++t)
    tensors.push_back({many[t].p.data(), many[t].g.data(), many[t].m.data(), many[t].v.data(), sizes[t], params[t]});
  AdamWStepMany(tensors);
  for (size_t t = 0; t < sizes.size(); ++t) {
    State& s = alone[t];
    AdamWStep(s.p.data(), s.g.data(), s.m.data(), s.v.data(), sizes[t], params[t]);
    SCOPED_TRACE("tensor " + std::to_string(t));
    ExpectSameBits(many[t].p, s.p, "p");
    ExpectSameBits(many[t].m, s.m, "m");
    ExpectSameBits(many[t].v, s.v, "v");
  }
}

TEST(SumOfSquares, ManyEqualsTheSingleSumsInTensorOrderOnAnyThreadCount) {
  Rng rng(14);
  std::vector<std::vector<float>> xs;
  std::vector<std::pair<const float*, int64_t>> views;
  for (int64_t n : {300000, 7, 65536, 1, 40000}) xs.push_back(RandomVec(rng, n));
  double want = 0.0, exact = 0.0;
  for (const auto& x : xs) {
    views.emplace_back(x.data(), static_cast<int64_t>(x.size()));
    want += SumOfSquares(x.data(), static_cast<int64_t>(x.size()));
    for (float f : x) exact += static_cast<double>(f) * f;
  }
  EXPECT_NEAR(want, exact, 1e-12 * exact);
  const int threads = NumThreads();
  for (int t : {1, 2}) {
    SetNumThreads(t);
    const double got = SumOfSquaresMany(views);
    EXPECT_EQ(std::memcmp(&got, &want, sizeof(double)), 0) << t << " threads: " << got << " vs " << want;
  }
  SetNumThreads(threads);
}

}  // namespace
}  // namespace r1::kernels
