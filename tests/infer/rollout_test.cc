// Batched rollouts equal single-sequence generation with the same seeds, and record the
// temperature-scaled log-probabilities of what they sampled.
#include <gtest/gtest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "infer/generate.h"
#include "infer/rollout.h"
#include "io/safetensors.h"
#include "model/parameters.h"

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

// Two threads decoding their own sequences through an ExpertExchange (the MoE layers' routed
// experts computed once for both threads' tokens) get the bits of each batch decoded on its own;
// when one thread's input is invalid both threads return an error (neither waits forever for the
// other) and no cache advances.
TEST(Rollout, ExpertExchangeEqualsEachBatchAloneAndFailsTogether) {
  auto model = DeepSeekV3::Load(std::string(R1_SOURCE_DIR) + "/tests/fixtures/tiny-f32-qlora");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const DeepSeekV3& m = **model;
  const int64_t V = m.config().vocab_size, B = 20;
  auto make = [&](std::vector<LatentCache>& caches) {
    caches.clear();
    for (int64_t b = 0; b < 2 * B; ++b) {
      caches.push_back(m.NewCache(16));
      const int32_t prompt[3] = {static_cast<int32_t>(b % V), static_cast<int32_t>((b * 7 + 3) % V), 5};
      std::vector<float> lg(static_cast<size_t>(V));
      m.Forward(prompt, 1 + b % 3, lg.data(), &caches.back(), /*last_only=*/true);
    }
  };
  std::vector<int32_t> ids(static_cast<size_t>(2 * B));
  for (int64_t b = 0; b < 2 * B; ++b) ids[b] = static_cast<int32_t>((b * 13 + 1) % V);
  std::vector<LatentCache> alone_caches, shared_caches;
  make(alone_caches);
  make(shared_caches);
  std::vector<float> alone(static_cast<size_t>(2 * B * V)), shared(alone.size());
  for (int t = 0; t < 2; ++t) {
    std::vector<LatentCache*> ptrs;
    for (int64_t b = 0; b < B; ++b) ptrs.push_back(&alone_caches[t * B + b]);
    ASSERT_TRUE(m.DecodeBatch(ids.data() + t * B, B, ptrs.data(), alone.data() + t * B * V).ok());
  }
  ExpertExchange exchange(2, m.config().n_routed_experts);
  Status st[2];
  int team = 0;
  auto run = [&](const std::vector<int32_t>& in) {
#pragma omp parallel num_threads(2)
    {
      team = omp_get_num_threads();
      const int t = omp_get_thread_num();
      std::vector<LatentCache*> ptrs;
      for (int64_t b = 0; b < B; ++b) ptrs.push_back(&shared_caches[t * B + b]);
      st[t] = m.DecodeBatch(in.data() + t * B, B, ptrs.data(), shared.data() + t * B * V, &exchange);
    }
  };
  for (int step = 0; step < 2; ++step) {  // the second step reuses the exchange's buffers
    run(ids);
    ASSERT_EQ(team, 2);
    ASSERT_TRUE(st[0].ok()) << st[0].ToString();
    ASSERT_TRUE(st[1].ok()) << st[1].ToString();
    EXPECT_EQ(shared, alone) << "step " << step;
    if (step == 0)
      for (int t = 0; t < 2; ++t) {
        std::vector<LatentCache*> ptrs;
        for (int64_t b = 0; b < B; ++b) ptrs.push_back(&alone_caches[t * B + b]);
        ASSERT_TRUE(m.DecodeBatch(ids.data() + t * B, B, ptrs.data(), alone.data() + t * B * V).ok());
      }
  }
  std::vector<int32_t> bad = ids;
  bad[2 * B - 1] = static_cast<int32_t>(V);  // thread 1's last id is outside the vocabulary
  std::vector<int64_t> lengths;
  for (const LatentCache& c : shared_caches) lengths.push_back(c.length());
  run(bad);
  EXPECT_FALSE(st[0].ok());
  EXPECT_FALSE(st[1].ok());
  EXPECT_NE(st[1].ToString().find("vocabulary"), std::string::npos) << st[1].ToString();
  for (size_t b = 0; b < shared_caches.size(); ++b) EXPECT_EQ(shared_caches[b].length(), lengths[b]) << "cache " << b;
}

// A policy on packed bf16 copies of its matrices (PackedBf16Weights, `r1 grpo --precision bf16`):
// its rollouts give every completion the bits of decoding it alone, split across threads or not;
// its logits are the f32 model's up to bf16 rounding of the operands, and not the same bits (the
// copies are what it multiplies by); after the masters change, Refresh makes it exactly a policy
// packed afresh from them.
TEST(Rollout, Bf16PolicyMatchesEachSequenceAloneAndFollowsItsMasters) {
  const std::string dir = std::string(R1_SOURCE_DIR) + "/tests/fixtures/tiny-f32-qlora";
  auto ck = io::Checkpoint::Open(dir);
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  auto config = ModelConfig::FromJson((*ck)->config_text(), dir);
  ASSERT_TRUE(config.ok());
  auto store = ParameterStore::FromCheckpoint(*config, **ck);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const auto masters = store->Weights();
  PackedBf16Weights packed(*masters);
  EXPECT_GT(packed.bytes(), 0u);
  const DeepSeekV3 f32(*config, store->Weights()), bf16(*config, packed.Views());
  const int64_t V = config->vocab_size;
  const std::vector<int32_t> prompt = {3, 40, 5, 77, 6, 1, 9};
  const int64_t T = static_cast<int64_t>(prompt.size());
  auto logits = [&](const DeepSeekV3& m) {
    std::vector<float> out(static_cast<size_t>(T * V));
    m.Forward(prompt.data(), T, out.data());
    return out;
  };
  const auto want = logits(f32), got = logits(bf16);
  double scale = 0, err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
    err = std::max(err, std::fabs(static_cast<double>(got[i]) - want[i]));
  }
  // Each product's operands are rounded to bf16 (relative error up to 2⁻⁹ each) through two
  // layers and the head: 1.5 · 2⁻⁹ of the logits' scale here, bound at 4 · 2⁻⁹; f32 rounding is
  // ~2⁻²³.
  EXPECT_LT(err, 4 * 0x1p-9 * scale) << "bf16 policy strays from the f32 model";
  EXPECT_GT(err, 1e-6 * scale) << "the bf16 policy computes the f32 model's bits: its copies are not used";

  std::vector<int32_t> long_prompt(40);
  for (size_t i = 0; i < long_prompt.size(); ++i) long_prompt[i] = static_cast<int32_t>((i * 37 + 11) % 128);
  const std::vector<std::vector<int32_t>> prompts = {{5, 9, 13}, {42}, long_prompt};
  RolloutOptions ro;
  ro.group = 16;  // 48 sequences
  ro.max_new_tokens = 8;
  ro.seed = 9;
  ro.split = RolloutOptions::Split::kProducts;
  ro.max_batch = 1;
  auto alone = SampleCompletions(bf16, prompts, ro);
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();
  const int saved = omp_get_max_threads();
  for (int threads : {2, 1}) {
    omp_set_num_threads(threads);
    for (auto [split, max_batch] : {std::pair{RolloutOptions::Split::kSequences, int64_t{64}},
                                    std::pair{RolloutOptions::Split::kProducts, int64_t{16}}}) {
      ro.split = split;
      ro.max_batch = max_batch;
      auto comps = SampleCompletions(bf16, prompts, ro);
      ASSERT_TRUE(comps.ok()) << comps.status().ToString();
      ASSERT_EQ(comps->size(), alone->size());
      for (size_t i = 0; i < comps->size(); ++i) {
        EXPECT_EQ((*comps)[i].ids, (*alone)[i].ids) << "completion " << i << ", " << threads << " threads";
        EXPECT_EQ((*comps)[i].logprobs, (*alone)[i].logprobs) << "completion " << i << ", " << threads << " threads";
      }
    }
  }
  omp_set_num_threads(saved);

  // An optimizer step's worth of change to the masters, then Refresh.
  Rng rng(1);
  for (Parameter& p : store->params())
    for (float& v : p.value) v += 0.01f * static_cast<float>(rng.Normal());
  packed.Refresh();
  const auto refreshed = logits(bf16);
  PackedBf16Weights fresh(*masters);
  EXPECT_EQ(refreshed, logits(DeepSeekV3(*config, fresh.Views())));
  EXPECT_NE(refreshed, got);
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
