// GRPO's per-token loss and its gradient: finite differences, the clip branches, the k3 KL; the
// micro-batches of a lane-split update.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

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

// Rows of each lane (micro-batch i on lane i % lanes), checking that every sample is placed once,
// each run whole and in sample order within its micro-batch, no micro-batch over `per`.
std::vector<int64_t> LaneRows(const std::vector<SampleRun>& runs, const std::vector<std::vector<int64_t>>& micro,
                              int64_t lanes, int64_t per) {
  std::vector<int64_t> run_of;
  for (size_t r = 0; r < runs.size(); ++r) run_of.insert(run_of.end(), static_cast<size_t>(runs[r].samples), r);
  std::vector<int> seen(run_of.size(), 0);
  std::vector<int64_t> lane_of_run(runs.size(), -1), rows(static_cast<size_t>(lanes), 0);
  for (size_t m = 0; m < micro.size(); ++m) {
    EXPECT_LE(static_cast<int64_t>(micro[m].size()), per) << "micro-batch " << m;
    EXPECT_TRUE(std::is_sorted(micro[m].begin(), micro[m].end())) << "micro-batch " << m;
    for (int64_t i : micro[m]) {
      ++seen[static_cast<size_t>(i)];
      const int64_t r = run_of[static_cast<size_t>(i)], lane = static_cast<int64_t>(m) % lanes;
      if (lane_of_run[r] < 0) {
        lane_of_run[r] = lane;
        rows[lane] += runs[r].rows;
      }
      EXPECT_EQ(lane_of_run[r], lane) << "run " << r << " split across lanes";
    }
  }
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << "sample " << i;
  return rows;
}

TEST(LaneBalancedMicroBatches, WholeRunsEvenLanes) {
  // 8 prompts of 8 samples, micro-batches of 16, 2 lanes: in order, lane 0 would take runs
  // 0, 1, 4, 5 (1900 rows) and lane 1 the rest (1300).
  const std::vector<SampleRun> runs = {{8, 500}, {8, 450}, {8, 300}, {8, 320}, {8, 480}, {8, 470}, {8, 310}, {8, 370}};
  const auto micro = LaneBalancedMicroBatches(runs, 4, 2, 16);
  ASSERT_EQ(micro.size(), 4u);
  for (const auto& m : micro) EXPECT_EQ(m.size(), 16u);
  const std::vector<int64_t> rows = LaneRows(runs, micro, 2, 16);
  EXPECT_EQ(rows[0] + rows[1], 3200);
  EXPECT_LE(std::abs(rows[0] - rows[1]), 60) << rows[0] << " vs " << rows[1];
  // Three lanes of two micro-batches of 4; runs of 4 and 2 samples.
  const std::vector<SampleRun> mixed = {{4, 90}, {2, 40}, {4, 200}, {2, 60}, {4, 100}, {4, 70}, {2, 30}, {2, 20}};
  const auto m3 = LaneBalancedMicroBatches(mixed, 6, 3, 4);
  ASSERT_EQ(m3.size(), 6u);
  const std::vector<int64_t> r3 = LaneRows(mixed, m3, 3, 4);
  EXPECT_EQ(r3[0] + r3[1] + r3[2], 610);
  // The run of 200 rows shares its lane with 4 more samples, at least 50 rows: 250 is the best.
  EXPECT_EQ(*std::max_element(r3.begin(), r3.end()), 250);
}

TEST(LaneBalancedMicroBatches, EmptyWhenARunFitsNoLane) {
  // A run longer than a lane's micro-batches hold, and lanes that cannot take whole runs.
  EXPECT_TRUE(LaneBalancedMicroBatches({{{9, 10}, {1, 5}}}, 2, 2, 5).empty());
  EXPECT_TRUE(LaneBalancedMicroBatches({{{3, 10}, {3, 10}, {3, 10}}}, 2, 2, 4).empty());
  EXPECT_TRUE(LaneBalancedMicroBatches({{{1, 1}}}, 3, 2, 4).empty());  // not a multiple of the lanes
  // Packable ({3, 5}, {2, 6}, {4, 4}) but not by dealing the largest rows first.
  EXPECT_TRUE(LaneBalancedMicroBatches({{{3, 90}, {5, 40}, {2, 200}, {6, 60}, {4, 100}, {4, 70}}}, 6, 3, 4).empty());
}

}  // namespace
}  // namespace r1::rl
