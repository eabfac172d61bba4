// RmsNorm against its double reference; RoPE frequencies against spec §4.1; the interleaved
// rotation against the scalar formula of spec §4.2; the softmax scale of spec §3.2 / §4.3.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>

#include "kernels/norm.h"
#include "kernels/rope.h"
#include "test_util.h"

namespace r1::kernels {
namespace {

using testing::ExpectClose;
using testing::RandomVec;

TEST(RmsNorm, MatchesReference) {
  Rng rng(1);
  for (int64_t C : {1, 5, 512, 7168}) {
    const int64_t T = 3;
    auto x = RandomVec(rng, T * C, 3.0);
    x[0] = 1e3f;  // one outlier
    const auto w = RandomVec(rng, C);
    std::vector<double> xd = testing::ToDouble(x), wd = testing::ToDouble(w), ref(T * C);
    ref::RmsNorm<double>(xd.data(), wd.data(), T, C, 1e-6, ref.data());
    std::vector<float> out(T * C), rstd(T);
    RmsNorm(x.data(), w.data(), T, C, 1e-6f, out.data(), rstd.data());
    // f32 product of three rounded factors: a few ulp of |y|.
    ExpectClose(out.data(), ref.data(), nullptr, T * C, 1e-6, 1e-30, "RmsNorm C=" + std::to_string(C));
    for (int64_t t = 0; t < T; ++t) {
      double ss = 0;
      for (int64_t c = 0; c < C; ++c) ss += xd[t * C + c] * xd[t * C + c];
      EXPECT_NEAR(rstd[t], 1.0 / std::sqrt(ss / C + 1e-6), 1e-6 / std::sqrt(ss / C + 1e-6));
    }
    // In place (out aliases x) gives the same bits.
    std::vector<float> y = x;
    RmsNorm(y.data(), w.data(), T, C, 1e-6f, y.data());
    EXPECT_EQ(y, out);
  }
  // All-zero input: eps keeps it finite, output 0.
  std::vector<float> z(16, 0.0f), w(16, 1.0f), o(16, 1.0f);
  RmsNorm(z.data(), w.data(), 1, 16, 1e-6f, o.data());
  for (float v : o) EXPECT_EQ(v, 0.0f);
}

// The row sums of RmsNorm and RmsNormBackward, as norm.cc defines them: 16 partial sums in
// double, column c into sum c mod 16 in column order (each term a fused multiply-add), then sums i
// and i + 8 added, then ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)).
template <class Term>
double RowSum(int64_t C, Term fma_into) {
  double s[16] = {};
  for (int64_t c = 0; c < C; ++c) s[c % 16] = fma_into(c, s[c % 16]);
  for (int i = 0; i < 8; ++i) s[i] += s[i + 8];
  return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

// One row at a time with those sums: the kernels, which split the rows over threads, fuse dx and
// dw on one thread and take dw by columns on several, must give these bits exactly — training and
// inference results do not depend on the grouping.
void RmsNormRows(const float* x, const float* w, int64_t T, int64_t C, float eps, float* out, float* rstd) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * C;
    const double ss = RowSum(C, [&](int64_t c, double acc) {
      return std::fma(static_cast<double>(xr[c]), static_cast<double>(xr[c]), acc);
    });
    const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(C) + eps));
    for (int64_t c = 0; c < C; ++c) out[t * C + c] = w[c] * (xr[c] * r);
    rstd[t] = r;
  }
}

void RmsNormBackwardRows(const float* x, const float* w, const float* rstd, const float* dy, int64_t T, int64_t C,
                         float* dx, float* dw) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * C;
    const float* g = dy + t * C;
    const float r = rstd[t];
    const double dot = RowSum(C, [&](int64_t c, double acc) {
      return std::fma(static_cast<double>(w[c]) * g[c], static_cast<double>(xr[c]), acc);
    });
    const float k = static_cast<float>(dot / static_cast<double>(C)) * r * r * r;
    for (int64_t c = 0; c < C; ++c) {
      dx[t * C + c] += r * w[c] * g[c] - xr[c] * k;
      dw[c] += g[c] * xr[c] * r;
    }
  }
}

TEST(RmsNorm, GroupedRowsGiveTheRowLoopsBits) {
  Rng rng(9);
  for (int64_t T : {1, 7, 8, 9, 37, 600})
    for (int64_t C : {1, 5, 8, 15, 16, 17, 64, 130, 512, 8200}) {
      const auto x = RandomVec(rng, T * C, 2.0), w = RandomVec(rng, C), dy = RandomVec(rng, T * C);
      const auto dx0 = RandomVec(rng, T * C), dw0 = RandomVec(rng, C);
      std::vector<float> want(T * C), want_rstd(T), want_dx = dx0, want_dw = dw0;
      RmsNormRows(x.data(), w.data(), T, C, 1e-6f, want.data(), want_rstd.data());
      RmsNormBackwardRows(x.data(), w.data(), want_rstd.data(), dy.data(), T, C, want_dx.data(), want_dw.data());
      for (int threads : {1, 2}) {
        const int saved = omp_get_max_threads();
        omp_set_num_threads(threads);
        std::vector<float> out(T * C), rstd(T), dx = dx0, dw = dw0;
        RmsNorm(x.data(), w.data(), T, C, 1e-6f, out.data(), rstd.data());
        RmsNormBackward(x.data(), w.data(), rstd.data(), dy.data(), T, C, dx.data(), dw.data());
        omp_set_num_threads(saved);
        const std::string what = "T " + std::to_string(T) + " C " + std::to_string(C) + " threads " + std::to_string(threads);
        EXPECT_EQ(std::memcmp(out.data(), want.data(), out.size() * sizeof(float)), 0) << what;
        EXPECT_EQ(std::memcmp(rstd.data(), want_rstd.data(), rstd.size() * sizeof(float)), 0) << what;
        EXPECT_EQ(std::memcmp(dx.data(), want_dx.data(), dx.size() * sizeof(float)), 0) << what;
        EXPECT_EQ(std::memcmp(dw.data(), want_dw.data(), dw.size() * sizeof(float)), 0) << what;
      }
    }
}

RopeParams V3Rope() {
  RopeParams p;
  p.dim = 64;
  p.theta = 10000.0;
  p.yarn = true;
  p.factor = 40.0;
  p.original_max_position = 4096;
  p.beta_fast = 32.0;
  p.beta_slow = 1.0;
  p.mscale = 1.0;
  p.mscale_all_dim = 1.0;
  return p;
}

// Spec §4.1 reference table (float64 values; the kernel computes in f32 as HF does).
TEST(Rope, V3YarnInvFreqMatchesSpecTable) {
  const auto inv = RopeInvFreq(V3Rope());
  ASSERT_EQ(inv.size(), 32u);
  const std::pair<int, double> table[] = {{0, 1.0},
                                          {10, 5.623413252e-02},
                                          {11, 3.900692657e-02},
                                          {16, 5.500000000e-03},
                                          {22, 1.778279410e-04},
                                          {23, 3.333803580e-05},
                                          {31, 3.333803580e-06}};
  for (auto [i, want] : table) EXPECT_NEAR(inv[i], want, 2e-6 * want) << "i=" << i;
  // Every index against the formula in double: low = 10, high = 23.
  for (int i = 0; i < 32; ++i) {
    const double f = std::pow(10000.0, -2.0 * i / 64.0);
    const double ramp = std::clamp((i - 10.0) / 13.0, 0.0, 1.0);
    const double want = f * (1.0 - ramp + ramp / 40.0);
    EXPECT_NEAR(inv[i], want, 2e-6 * want) << "i=" << i;
  }
}

TEST(Rope, PlainInvFreq) {
  for (double theta : {10000.0, 500000.0}) {
    RopeParams p;
    p.dim = 128;
    p.theta = theta;
    const auto inv = RopeInvFreq(p);
    ASSERT_EQ(inv.size(), 64u);
    for (int i = 0; i < 64; ++i) {
      const double want = std::pow(theta, -2.0 * i / 128.0);
      EXPECT_NEAR(inv[i], want, 2e-6 * want) << "theta=" << theta << " i=" << i;
    }
    EXPECT_EQ(RopeAttentionFactor(p), 1.0f);
  }
}

TEST(Rope, SoftmaxScaleAndAttentionFactor) {
  const RopeParams v3 = V3Rope();
  // 192^-1/2 · (0.1·ln 40 + 1)² = 0.13523378 (spec §3.2, §4.3).
  EXPECT_NEAR(SoftmaxScale(v3, 192), 0.13523378, 1e-7);
  EXPECT_NEAR(YarnGetMscale(40.0, 1.0), 1.3688879, 1e-7);
  // mscale == mscale_all_dim: cos/sin are not scaled (spec §11 item 3).
  EXPECT_EQ(RopeAttentionFactor(v3), 1.0f);
  RopeParams plain;
  // Returned as f32: within one f32 rounding (6e-8 relative).
  EXPECT_NEAR(SoftmaxScale(plain, 192), 1.0 / std::sqrt(192.0), 1e-7 / std::sqrt(192.0));
  EXPECT_NEAR(SoftmaxScale(plain, 128), 1.0 / std::sqrt(128.0), 1e-7 / std::sqrt(128.0));
}

// Scalar spec §4.2 formula in double, with the angle formed in f32 as the kernel (and HF) do.
void RopeScalar(std::vector<double>& v, int64_t pos, const std::vector<float>& inv, bool inverse) {
  for (size_t i = 0; i < inv.size(); ++i) {
    const double angle = static_cast<float>(pos) * inv[i];
    const double c = std::cos(angle), s = inverse ? -std::sin(angle) : std::sin(angle);
    const double a = v[2 * i], b = v[2 * i + 1];
    v[2 * i] = a * c - b * s;
    v[2 * i + 1] = a * s + b * c;
  }
}

TEST(Rope, InterleavedMatchesFormulaAndInverts) {
  Rng rng(5);
  const auto inv = RopeInvFreq(V3Rope());
  // q laid out (T, H, 192) with the rope part in the last 64 of each head (spec §3.2).
  const int64_t T = 4, H = 3, D = 192, Dn = 128, Dr = 64;
  const int32_t pos[T] = {0, 1, 4097, 163839};
  const auto q0 = RandomVec(rng, T * H * D);
  std::vector<float> q = q0;
  RopeInterleaved(q.data() + Dn, T, H, H * D, D, pos, inv.data(), Dr, 1.0f);
  std::vector<double> want(T * H * D);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const float* src = q0.data() + (t * H + h) * D;
      std::vector<double> v(src + Dn, src + D);
      RopeScalar(v, pos[t], inv, false);
      for (int64_t j = 0; j < D; ++j) want[(t * H + h) * D + j] = j < Dn ? src[j] : v[j - Dn];
    }
  // Magnitude per element: the pair's norm (rotation mixes the two).
  std::vector<double> mag(T * H * D);
  for (int64_t i = 0; i < T * H * D; i += 2) {
    mag[i] = mag[i + 1] = std::hypot(q0[i], q0[i + 1]);
  }
  ExpectClose(q.data(), want.data(), mag.data(), T * H * D, 1e-6, 0.0, "RopeInterleaved");
  for (int64_t t = 0; t < T; ++t)  // the nope part is untouched, bit for bit
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < Dn; ++j) ASSERT_EQ(q[(t * H + h) * D + j], q0[(t * H + h) * D + j]);
  // Position 0 is the identity.
  for (int64_t j = 0; j < D; ++j) EXPECT_EQ(q[j], q0[j]);

  // inverse ∘ forward = identity.
  RopeInterleaved(q.data() + Dn, T, H, H * D, D, pos, inv.data(), Dr, 1.0f, /*inverse=*/true);
  const std::vector<double> orig = testing::ToDouble(q0);
  ExpectClose(q.data(), orig.data(), mag.data(), T * H * D, 1e-6, 0.0, "Rope inverse∘forward");

  // The attention factor scales the rotated pair (plain RoPE, dim 128, one head).
  RopeParams plain;
  plain.dim = 128;
  const auto inv128 = RopeInvFreq(plain);
  const auto k0 = RandomVec(rng, 128);
  std::vector<float> k = k0;
  const int32_t p7 = 7;
  RopeInterleaved(k.data(), 1, 1, 128, 128, &p7, inv128.data(), 128, 0.5f);
  std::vector<double> kw = testing::ToDouble(k0);
  RopeScalar(kw, 7, inv128, false);
  for (auto& v : kw) v *= 0.5;
  std::vector<double> kmag(128);
  for (int i = 0; i < 128; i += 2) kmag[i] = kmag[i + 1] = std::hypot(k0[i], k0[i + 1]);
  ExpectClose(k.data(), kw.data(), kmag.data(), 128, 1e-6, 0.0, "RopeInterleaved factor 0.5");
}

// Relative rotation: <R(p)q, R(p')k> depends only on p − p'.
TEST(Rope, DotProductDependsOnOffsetOnly) {
  Rng rng(9);
  const auto inv = RopeInvFreq(V3Rope());
  const auto q0 = RandomVec(rng, 64), k0 = RandomVec(rng, 64);
  auto dot_at = [&](int32_t pq, int32_t pk) {
    std::vector<float> q = q0, k = k0;
    RopeInterleaved(q.data(), 1, 1, 64, 64, &pq, inv.data(), 64, 1.0f);
    RopeInterleaved(k.data(), 1, 1, 64, 64, &pk, inv.data(), 64, 1.0f);
    double d = 0;
    for (int i = 0; i < 64; ++i) d += static_cast<double>(q[i]) * k[i];
    return d;
  };
  const double a = dot_at(10, 3), b = dot_at(1007, 1000);
  // f32 angles at ~1000 carry ~1e-4 rad of rounding in the slowest-turning pairs' product terms.
  EXPECT_NEAR(a, b, 1e-3 * 64);
}

}  // namespace
}  // namespace r1::kernels
