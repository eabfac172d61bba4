// GRPO's per-token loss and its gradient: finite differences, the clip branches, the k3 KL.
#include <gtest/gtest.h>

#include <cmath>

#include "rl/grpo.h"

namespace r1::rl {
namespace {

double NumCoef(double logp, double old_logp, bool ref, double ref_logp, double A, double el, double eh, double beta) {
  const double h = 1e-6;
  return (GrpoTokenTerms(logp + h, old_logp, ref, ref_logp, A, el, eh, beta).loss -
          GrpoTokenTerms(logp - h, old_logp, ref, ref_logp, A, el, eh, beta).loss) /
         (2 * h);
}

TEST(GrpoTokenTerms, GradientMatchesFiniteDifferences) {
  for (double A : {1.3, -0.7})
    for (double d : {-0.5, -0.05, 0.0, 0.05, 0.5})  // logp − old_logp
      for (bool ref : {false, true}) {
        const double old = -1.2, lp = old + d;
        const TokenTerms t = GrpoTokenTerms(lp, old, ref, -1.0, A, 0.2, 0.28, 0.04);
        EXPECT_NEAR(t.coef, NumCoef(lp, old, ref, -1.0, A, 0.2, 0.28, 0.04), 1e-6) << A << " " << d << " " << ref;
      }
}

TEST(GrpoTokenTerms, ClipBranches) {
  // ρ = 1 at the first pass: the objective is −A, its gradient −A, nothing clipped.
  TokenTerms t = GrpoTokenTerms(-2.0, -2.0, false, 0, 0.5, 0.2, 0.2, 0);
  EXPECT_DOUBLE_EQ(t.loss, -0.5);
  EXPECT_DOUBLE_EQ(t.coef, -0.5);
  EXPECT_FALSE(t.clipped);
  // Positive advantage, ratio above 1 + ε_high: clipped, no gradient.
  t = GrpoTokenTerms(std::log(1.5), 0.0, false, 0, 1.0, 0.2, 0.28, 0);
  EXPECT_TRUE(t.clipped);
  EXPECT_DOUBLE_EQ(t.coef, 0.0);
  EXPECT_NEAR(t.loss, -1.28, 1e-12);
  // Positive advantage, ratio below 1 − ε: the min keeps the (smaller) unclipped term.
  t = GrpoTokenTerms(std::log(0.5), 0.0, false, 0, 1.0, 0.2, 0.2, 0);
  EXPECT_FALSE(t.clipped);
  EXPECT_NEAR(t.coef, -0.5, 1e-12);
  // Negative advantage, ratio below 1 − ε: clipped.
  t = GrpoTokenTerms(std::log(0.5), 0.0, false, 0, -1.0, 0.2, 0.2, 0);
  EXPECT_TRUE(t.clipped);
  EXPECT_DOUBLE_EQ(t.coef, 0.0);
}

TEST(GrpoTokenTerms, K3KlIsNonNegativeAndZeroAtTheReference) {
  EXPECT_DOUBLE_EQ(GrpoTokenTerms(-1.0, -1.0, true, -1.0, 0.0, 0.2, 0.2, 0.1).kl, 0.0);
  for (double r : {-3.0, -1.5, -0.2}) EXPECT_GT(GrpoTokenTerms(-1.0, -1.0, true, r, 0.0, 0.2, 0.2, 0.1).kl, 0.0);
}

}  // namespace
}  // namespace r1::rl
