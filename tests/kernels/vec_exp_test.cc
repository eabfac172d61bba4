// The vectorized exp (vec_exp.h) against exp in double: error in float ulps over the float range,
// special values, and ExpShifted's sums and tails for every length up to 40.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "kernels/vec_exp.h"

namespace r1::kernels {
namespace {

// Distance in representable floats between a (positive, finite) and the double reference.
double UlpError(float got, double want) {
  const float w = static_cast<float>(want);
  if (w == 0.0f) return got == 0.0f ? 0.0 : std::fabs(static_cast<double>(got)) / std::numeric_limits<float>::denorm_min();
  const double ulp = std::nextafter(std::fabs(w), std::numeric_limits<float>::infinity()) - std::fabs(w);
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

std::vector<float> ExpAll(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  ExpShifted(x.data(), static_cast<int64_t>(x.size()), 0.0f, 1.0f, out.data());
  return out;
}

TEST(VecExp, WithinTwoUlpOverTheFloatRange) {
  std::vector<float> x;
  for (double v = -103.0; v <= 88.7; v += 0.00137) x.push_back(static_cast<float>(v));
  Rng rng(5);
  for (int i = 0; i < 100000; ++i) x.push_back(static_cast<float>(rng.Uniform() * 2.0 - 1.0));  // around 0
  const std::vector<float> got = ExpAll(x);
  double worst = 0, worst_at = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    if (want < std::numeric_limits<float>::min()) {  // denormal results: absolute error in denormal steps
      EXPECT_LE(std::fabs(got[i] - want), 2.0 * std::numeric_limits<float>::denorm_min()) << "x = " << x[i];
      continue;
    }
    const double e = UlpError(got[i], want);
    if (e > worst) worst = e, worst_at = x[i];
  }
  EXPECT_LE(worst, 2.0) << "worst at x = " << worst_at;
}

TEST(VecExp, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {0.0f, -0.0f, -inf, inf, nan, 89.0f, 200.0f, -200.0f, -1e30f, 1e30f, 88.72f};
  const std::vector<float> got = ExpAll(x);
  EXPECT_EQ(got[0], 1.0f);
  EXPECT_EQ(got[1], 1.0f);
  EXPECT_EQ(got[2], 0.0f);
  EXPECT_EQ(got[3], inf);
  EXPECT_TRUE(std::isnan(got[4]));
  EXPECT_EQ(got[5], inf);  // e^89 > FLT_MAX
  EXPECT_EQ(got[6], inf);
  EXPECT_EQ(got[7], 0.0f);
  EXPECT_EQ(got[8], 0.0f);
  EXPECT_EQ(got[9], inf);
  EXPECT_LE(UlpError(got[10], std::exp(static_cast<double>(88.72f))), 2.0);
}

TEST(VecExp, ShiftedSumScaleAndTailsForEveryLength) {
  Rng rng(9);
  for (int64_t n = 0; n <= 40; ++n) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = static_cast<float>(rng.Uniform() * 20.0 - 10.0);
    const float shift = 3.5f, scale = 0.25f;
    // Guard values after the end must be neither read into the sum nor written.
    std::vector<float> out(static_cast<size_t>(n) + 16, 7.0f);
    const double sum = ExpShifted(x.data(), n, shift, scale, out.data());
    double want_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double e = std::exp(static_cast<double>(x[i] - shift));  // the difference is taken in float
      want_sum += e;
      EXPECT_LE(UlpError(out[i] / scale, e), 2.5) << "n " << n << " i " << i;
    }
    for (size_t i = static_cast<size_t>(n); i < out.size(); ++i) EXPECT_EQ(out[i], 7.0f);
    EXPECT_NEAR(sum, want_sum, 1e-6 * want_sum + 1e-300) << "n " << n;
    EXPECT_EQ(ExpShifted(x.data(), n, shift, scale, nullptr), sum);  // sum only: the same
    // In place.
    std::vector<float> y = x;
    ExpShifted(y.data(), n, shift, scale, y.data());
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[i], out[i]);
  }
}

TEST(VecExp, MaxOfEveryLengthAndPosition) {
  Rng rng(10);
  EXPECT_EQ(MaxOf(nullptr, 0), -INFINITY);
  for (int64_t n = 1; n <= 70; ++n)
    for (int64_t at = 0; at < n; ++at) {  // the maximum in every lane and in the scalar tail
      std::vector<float> x(static_cast<size_t>(n));
      for (float& v : x) v = static_cast<float>(rng.Uniform() * 20.0 - 10.0);
      x[static_cast<size_t>(at)] = 11.0f;
      EXPECT_EQ(MaxOf(x.data(), n), 11.0f) << "n " << n << " at " << at;
    }
  const std::vector<float> neg = {-5.0f, -INFINITY, -3.0f, -4.0f};
  EXPECT_EQ(MaxOf(neg.data(), 4), -3.0f);
  std::vector<float> with_nan(40, 1.0f);
  with_nan[3] = NAN;
  with_nan[20] = 2.0f;
  EXPECT_EQ(MaxOf(with_nan.data(), 40), 2.0f);  // skipped; the row's exp sum still turns NaN
}

}  // namespace
}  // namespace r1::kernels
