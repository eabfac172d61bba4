#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "infer/sampler.h"

namespace r1 {
namespace {

TEST(Sampler, GreedyIsArgmax) {
  Sampler s(SamplingParams{});
  const float logits[5] = {0.1f, 2.0f, -1.0f, 1.9f, 0.0f};
  EXPECT_EQ(s.Sample(logits, 5), 1);
}

TEST(Sampler, TopKOneIsGreedy) {
  Sampler s(SamplingParams{1.0f, 1.0f, 1, 42});
  const float logits[4] = {0.0f, 0.5f, 3.0f, 0.2f};
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.Sample(logits, 4), 2);
}

TEST(Sampler, FrequenciesFollowSoftmax) {
  // p ∝ exp(logit / T): with T = 1 and logits log(1), log(2), log(7) -> 0.1, 0.2, 0.7.
  Sampler s(SamplingParams{1.0f, 1.0f, 0, 7});
  const float logits[3] = {0.0f, std::log(2.0f), std::log(7.0f)};
  std::map<int, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) counts[s.Sample(logits, 3)]++;
  EXPECT_NEAR(counts[0] / double(n), 0.1, 0.015);
  EXPECT_NEAR(counts[1] / double(n), 0.2, 0.015);
  EXPECT_NEAR(counts[2] / double(n), 0.7, 0.015);
}

TEST(Sampler, TopPDropsTheTail) {
  // Probabilities 0.7, 0.2, 0.1: top_p 0.8 keeps the first two only, renormalized.
  Sampler s(SamplingParams{1.0f, 0.8f, 0, 3});
  const float logits[3] = {std::log(7.0f), std::log(2.0f), 0.0f};
  int tail = 0, first = 0;
  float lp = 0;
  for (int i = 0; i < 5000; ++i) {
    const int id = s.Sample(logits, 3, &lp);
    tail += id == 2;
    if (id == 0) {
      ++first;
      EXPECT_NEAR(lp, std::log(0.7 / 0.9), 1e-5);
    }
  }
  EXPECT_EQ(tail, 0);
  EXPECT_NEAR(first / 5000.0, 0.7 / 0.9, 0.02);
}

TEST(Sampler, SameSeedSameStream) {
  const float logits[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
  Sampler a(SamplingParams{0.8f, 0.95f, 0, 11}), b(SamplingParams{0.8f, 0.95f, 0, 11});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.Sample(logits, 6), b.Sample(logits, 6));
}

}  // namespace
}  // namespace r1
