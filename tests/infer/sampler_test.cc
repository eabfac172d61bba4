#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "core/rng.h"

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

// Against a plain reference that sorts the whole vocabulary: with top-k and top-p in every
// combination, over vocabularies larger than the sampler's first sorted prefix (64), every sample
// lies in the reference's candidate set, its log-prob is the reference's, and the frequencies of
// the leading candidates follow the renormalized probabilities.
TEST(Sampler, MatchesFullSortReferenceForTopKAndTopP) {
  Rng rng(17);
  for (const int64_t V : {7, 300, 5000}) {
    std::vector<float> logits(static_cast<size_t>(V));
    for (float& x : logits) x = static_cast<float>(rng.Normal() * 2.0);
    logits[3] = logits[5];  // a tie, broken by id
    for (const int32_t top_k : {0, 1, 50, 200}) {
      for (const float top_p : {1.0f, 0.9f, 0.3f}) {
        const float T = 0.7f;
        // Reference: sort by logit (ties by id), cut by k, then the shortest prefix reaching top_p.
        std::vector<int32_t> order(static_cast<size_t>(V));
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
          return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
        });
        const int64_t k = top_k > 0 ? std::min<int64_t>(top_k, V) : V;
        std::vector<double> p(static_cast<size_t>(k));
        double zk = 0;
        for (int64_t i = 0; i < k; ++i) zk += p[i] = std::exp((double(logits[order[i]]) - logits[order[0]]) / T);
        int64_t n = k;
        double acc = 0;
        for (int64_t i = 0; i < k && top_p < 1.0f; ++i)
          if ((acc += p[i] / zk) >= top_p) {
            n = i + 1;
            break;
          }
        double kept = 0;
        for (int64_t i = 0; i < n; ++i) kept += p[i];
        std::map<int32_t, double> want;
        for (int64_t i = 0; i < n; ++i) want[order[i]] = p[i] / kept;
        Sampler s(SamplingParams{T, top_p, top_k, 5});
        std::map<int32_t, int> got;
        const int draws = V > 1000 ? 2000 : 20000;
        for (int d = 0; d < draws; ++d) {
          float lp = 0;
          const int32_t id = s.Sample(logits.data(), V, &lp);
          ASSERT_TRUE(want.count(id)) << "V " << V << " k " << top_k << " p " << top_p << ": id " << id;
          ASSERT_NEAR(lp, std::log(want[id]), 1e-4) << "V " << V << " k " << top_k << " p " << top_p;
          ++got[id];
        }
        for (const auto& [id, q] : want) {
          if (q > 0.05) {
            EXPECT_NEAR(got[id] / double(draws), q, 4 * std::sqrt(q * (1 - q) / draws) + 1e-3)
                << "V " << V << " k " << top_k << " p " << top_p << " id " << id;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace r1
