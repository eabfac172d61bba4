// Batched rollouts equal single-sequence generation with the same seeds, and record the
// temperature-scaled log-probabilities of what they sampled.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>

#include "infer/generate.h"
#include "infer/rollout.h"

namespace r1 {
namespace {

TEST(Rollout, GroupsMatchGenerateAlone) {
  auto model = DeepSeekV3::Load(std::string(R1_SOURCE_DIR) + "/tests/fixtures/tiny-fp8");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const std::vector<std::vector<int32_t>> prompts = {{5, 9, 13}, {7, 7, 100, 3, 22}, {42}};
  RolloutOptions ro;
  ro.group = 3;
  ro.max_new_tokens = 12;
  ro.temperature = 0.9f;
  ro.top_p = 0.95f;
  ro.seed = 11;
  ro.stop_ids = {2};
  ro.max_batch = 4;  // several decode chunks per step
  RolloutStats stats;
  auto comps = SampleCompletions(**model, prompts, ro, &stats);
  ASSERT_TRUE(comps.ok()) << comps.status().ToString();
  ASSERT_EQ(comps->size(), 9u);
  int64_t tokens = 0;
  for (size_t i = 0; i < comps->size(); ++i) {
    const Completion& c = (*comps)[i];
    const int64_t p = static_cast<int64_t>(i / 3);
    EXPECT_EQ(c.prompt_index, p);
    GenerateOptions go;
    go.max_new_tokens = ro.max_new_tokens;
    go.sampling = SamplingParams{ro.temperature, ro.top_p, 0, ro.seed + i};
    go.stop_ids = ro.stop_ids;
    auto alone = Generate(**model, prompts[p], go);
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ(c.ids, alone->ids) << "completion " << i;
    EXPECT_EQ(c.stopped, alone->stopped);
    ASSERT_EQ(c.logprobs.size(), c.ids.size());
    for (float lp : c.logprobs) {
      EXPECT_LE(lp, 0.0f);
      EXPECT_TRUE(std::isfinite(lp));
    }
    tokens += static_cast<int64_t>(c.ids.size());
  }
  EXPECT_EQ(stats.tokens, tokens);
  // Different completions of one prompt differ (different seeds).
  EXPECT_NE((*comps)[0].ids, (*comps)[1].ids);
}

// Decoding per thread (each thread its own chunk of sequences) gives every completion the bits of
// decoding it alone — the same tokens and log-probabilities — at 1 and 2 threads, with more
// sequences than one GEMV batch holds; sharing the products agrees too while each chunk stays
// within one GEMV batch.
TEST(Rollout, SplitsAcrossThreadsMatchEachSequenceAlone) {
  auto model = DeepSeekV3::Load(std::string(R1_SOURCE_DIR) + "/tests/fixtures/tiny-f32-qlora");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  // The last prompt is longer than one GEMV batch: its prefill products go to sgemm, in bands when
  // the threads share them and whole when each thread prefills its own prompts.
  std::vector<int32_t> long_prompt(40);
  for (size_t i = 0; i < long_prompt.size(); ++i) long_prompt[i] = static_cast<int32_t>((i * 37 + 11) % 128);
  const std::vector<std::vector<int32_t>> prompts = {{5, 9, 13}, {7, 7, 100, 3, 22}, {42}, long_prompt};
  const size_t n = prompts.size() * 12;
  RolloutOptions ro;
  ro.group = 12;  // 48 sequences
  ro.max_new_tokens = 8;
  ro.temperature = 1.0f;
  ro.seed = 5;
  // Reference: every sequence decoded as a batch of its own.
  ro.split = RolloutOptions::Split::kProducts;
  ro.max_batch = 1;
  auto alone = SampleCompletions(**model, prompts, ro);
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();
  ASSERT_EQ(alone->size(), n);
  for (size_t i = 0; i < n; ++i) {
    GenerateOptions go;
    go.max_new_tokens = ro.max_new_tokens;
    go.sampling = SamplingParams{ro.temperature, ro.top_p, 0, ro.seed + i};
    auto g = Generate(**model, prompts[i / 12], go);
    ASSERT_TRUE(g.ok());
    EXPECT_EQ((*alone)[i].ids, g->ids) << "completion " << i;
  }
  const int saved = omp_get_max_threads();
  struct Case {
    int threads;
    RolloutOptions::Split split;
    int64_t max_batch;
  };
  for (const Case& k : {Case{2, RolloutOptions::Split::kSequences, 64}, Case{1, RolloutOptions::Split::kSequences, 64},
                        Case{2, RolloutOptions::Split::kProducts, 8}}) {
    omp_set_num_threads(k.threads);
    ro.split = k.split;
    ro.max_batch = k.max_batch;
    auto comps = SampleCompletions(**model, prompts, ro);
    ASSERT_TRUE(comps.ok()) << comps.status().ToString();
    ASSERT_EQ(comps->size(), n);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ((*comps)[i].ids, (*alone)[i].ids) << "completion " << i << ", " << k.threads << " threads";
      EXPECT_EQ((*comps)[i].logprobs, (*alone)[i].logprobs) << "completion " << i << ", " << k.threads << " threads";
    }
  }
  omp_set_num_threads(saved);
}

TEST(Rollout, DecodeSplitFollowsTheCache) {
  using S = RolloutOptions::Split;
  EXPECT_EQ(DecodeSplit(45u << 20, 260u << 20, 2), S::kSequences);   // small RL model, big L3
  EXPECT_EQ(DecodeSplit(1000u << 20, 260u << 20, 2), S::kProducts);  // streams from memory
  EXPECT_EQ(DecodeSplit(131u << 20, 260u << 20, 2), S::kProducts);   // over half the cache
  EXPECT_EQ(DecodeSplit(1u << 20, 260u << 20, 1), S::kProducts);     // one thread
  EXPECT_EQ(DecodeSplit(1u << 20, 0, 2), S::kProducts);              // cache size unknown
}

TEST(Rollout, RecordedLogProbsAreTheTemperatureScaledSoftmax) {
  auto model = DeepSeekV3::Load(std::string(R1_SOURCE_DIR) + "/tests/fixtures/tiny-f32-qlora");
  ASSERT_TRUE(model.ok());
  const std::vector<int32_t> prompt = {3, 4, 5, 6};
  RolloutOptions ro;
  ro.group = 2;
  ro.max_new_tokens = 6;
  ro.temperature = 0.7f;
  auto comps = SampleCompletions(**model, {prompt}, ro);
  ASSERT_TRUE(comps.ok());
  const int64_t V = (*model)->config().vocab_size;
  for (const Completion& c : *comps) {
    // Recompute with one full forward over prompt + completion.
    std::vector<int32_t> seq = prompt;
    seq.insert(seq.end(), c.ids.begin(), c.ids.end());
    std::vector<float> logits(seq.size() * static_cast<size_t>(V));
    (*model)->Forward(seq.data(), static_cast<int64_t>(seq.size()), logits.data());
    for (size_t j = 0; j < c.ids.size(); ++j) {
      const double lp = LogProbAt(logits.data() + (prompt.size() - 1 + j) * V, V, c.ids[j], ro.temperature);
      EXPECT_NEAR(c.logprobs[j], lp, 1e-4);
    }
  }
  // A prompt that does not fit is refused.
  ro.max_new_tokens = 1000;
  EXPECT_EQ(SampleCompletions(**model, {prompt}, ro).status().code(), StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace r1
