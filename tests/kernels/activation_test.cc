// Softmax and SwiGLU against their double references (activation.h).
#include "kernels/activation.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "test_util.h"

namespace r1::kernels {
namespace {

using testing::ExpectClose;
using testing::RandomVec;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

TEST(Softmax, MatchesReference) {
  Rng rng(2);
  for (int64_t n : {1, 3, 17, 1000}) {
    const int64_t rows = 4;
    auto x = RandomVec(rng, rows * n, 5.0);
    // Partly masked rows (-inf gets probability 0), one huge logit.
    if (n > 2) {
      x[0] = kNegInf;
      x[n + 1] = kNegInf;
      x[2 * n] = 80.0f;
    }
    std::vector<double> ref = testing::ToDouble(x);
    ref::Softmax<double>(ref.data(), rows, n);
    std::vector<float> y = x;
    Softmax(y.data(), rows, n);
    // Each probability: a few f32 roundings of exp and of the sum over n terms.
    ExpectClose(y.data(), ref.data(), nullptr, rows * n, 1e-5, 1e-9, "Softmax n=" + std::to_string(n));
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += y[r * n + i];
      EXPECT_NEAR(s, 1.0, 1e-5);
    }
    if (n > 2) {
      EXPECT_EQ(y[0], 0.0f);
    }
  }
}

TEST(Softmax, FullyMaskedRowIsZeroNotNaN) {
  std::vector<float> x = {kNegInf, kNegInf, kNegInf, 1.0f, 2.0f, kNegInf};
  Softmax(x.data(), 2, 3);
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_EQ(x[1], 0.0f);
  EXPECT_EQ(x[2], 0.0f);
  EXPECT_NEAR(x[3], 1.0 / (1.0 + std::exp(1.0)), 1e-7);
  EXPECT_NEAR(x[4], 1.0 / (1.0 + std::exp(-1.0)), 1e-7);
  EXPECT_EQ(x[5], 0.0f);
}

TEST(SwiGLU, MatchesReference) {
  Rng rng(4);
  const int64_t n = 1031;
  auto gate = RandomVec(rng, n, 4.0);
  const auto up = RandomVec(rng, n);
  // Saturated tails: silu(-200) = -0 (exp overflows to inf in f32), silu(200) = 200.
  gate[0] = -200.0f;
  gate[1] = 200.0f;
  gate[2] = 0.0f;
  std::vector<double> gd = testing::ToDouble(gate), ud = testing::ToDouble(up), ref(n);
  ref::SwiGLU<double>(gd.data(), ud.data(), ref.data(), n);
  std::vector<float> out(n);
  SwiGLU(gate.data(), up.data(), out.data(), n);
  ExpectClose(out.data(), ref.data(), nullptr, n, 1e-6, 1e-30, "SwiGLU");
  EXPECT_FALSE(std::isnan(out[0]));
  // out aliasing gate.
  std::vector<float> g = gate;
  SwiGLU(g.data(), up.data(), g.data(), n);
  EXPECT_EQ(g, out);
}

// Every element gets the same bits wherever it lies in the array (a full block of 16 or the masked
// tail, any lane), σ included; large, infinite and NaN gates saturate as the formula does; the
// backward recomputing σ gets the bits of the backward given the forward's σ.
TEST(SwiGLU, EveryElementGetsTheSameBitsWhereverItLies) {
  Rng rng(5);
  const int64_t n = 16 * 9 + 5;
  auto gate = RandomVec(rng, n, 6.0);
  const auto up = RandomVec(rng, n), dout = RandomVec(rng, n);
  gate[37] = 95.0f;
  gate[70] = -88.5f;
  gate[100] = std::numeric_limits<float>::infinity();
  gate[101] = std::numeric_limits<float>::quiet_NaN();
  gate[102] = -std::numeric_limits<float>::infinity();
  std::vector<float> out(n), sig(n);
  SwiGLU(gate.data(), up.data(), out.data(), n, sig.data());
  auto same = [](float a, float b) { return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b); };
  for (int64_t k : {1, 3, 7, 16, 140}) {
    std::vector<float> o(n - k), sg(n - k);
    SwiGLU(gate.data() + k, up.data() + k, o.data(), n - k, sg.data());
    for (int64_t i = 0; i < n - k; ++i) {
      EXPECT_TRUE(same(o[i], out[k + i])) << "offset " << k << ", element " << k + i;
      EXPECT_TRUE(same(sg[i], sig[k + i])) << "offset " << k << ", element " << k + i;
    }
  }
  EXPECT_EQ(sig[37], 1.0f);
  EXPECT_EQ(out[37], 95.0f * up[37]);
  EXPECT_GE(sig[70], 0.0f);
  EXPECT_LT(sig[70], 1e-37f);
  EXPECT_EQ(out[100], std::numeric_limits<float>::infinity() * up[100]);
  EXPECT_TRUE(std::isnan(out[101]) && std::isnan(sig[101]));
  EXPECT_EQ(sig[102], 0.0f);
  std::vector<float> dg(n), du(n), dg2(n), du2(n);
  SwiGLUBackward(gate.data(), up.data(), dout.data(), dg.data(), du.data(), n, sig.data());
  SwiGLUBackward(gate.data(), up.data(), dout.data(), dg2.data(), du2.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_TRUE(same(dg[i], dg2[i]) || (std::isnan(dg[i]) && std::isnan(dg2[i]))) << i;
    EXPECT_TRUE(same(du[i], du2[i]) || (std::isnan(du[i]) && std::isnan(du2[i]))) << i;
  }
}

}  // namespace
}  // namespace r1::kernels
