// A rollout's FfnTape (model/ffn_tape.h): recording changes nothing the rollout samples, and the
// training graph's forward from the tape gives the losses, log-probabilities and gradients of the
// full forward on the same tokens, up to the rounding of the products' summation order. Checked
// for the decode paths that record (a thread per chunk of sequences with the routed experts
// exchanged between the threads, one thread, threads sharing the products), with and without
// shared experts, in f32 and with bf16 products.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <memory>

#include "common/tiny_config.h"
#include "infer/rollout.h"
#include "kernels/gemm.h"
#include "model/parameters.h"
#include "model/train_graph.h"
#include "model/weights.h"

namespace r1 {
namespace {

struct Taped {
  TrainBatch batch;
  std::vector<int64_t> first, rows;  // per completion: the position predicting its first token; per position: its row
};

// GRPO's layout (rl/grpo.cc): per prompt its tokens but the last once, then per completion the
// prompt's last token and the completion but its last token, continuing that prefix.
Taped SharedPrefixBatch(const std::vector<std::vector<int32_t>>& prompts, const std::vector<Completion>& comps) {
  Taped t;
  TrainBatch& b = t.batch;
  b.B = 1;
  auto push = [&](int32_t id, int32_t target, int32_t doc, int32_t prefix, int64_t row) {
    b.ids.push_back(id);
    b.targets.push_back(target);
    b.doc.push_back(doc);
    b.prefix.push_back(prefix);
    t.rows.push_back(row);
  };
  int32_t doc = 0, prefix_doc = -1;
  for (size_t i = 0; i < comps.size(); ++i) {
    const Completion& c = comps[i];
    const auto& prompt = prompts[static_cast<size_t>(c.prompt_index)];
    const auto P = static_cast<int64_t>(prompt.size());
    if (i == 0 || comps[i - 1].prompt_index != c.prompt_index) {
      prefix_doc = P > 1 ? doc++ : -1;
      for (int64_t j = 0; j + 1 < P; ++j) push(prompt[j], -1, prefix_doc, -1, c.tape_prompt_row + j);
    }
    const int32_t d = doc++;
    t.first.push_back(static_cast<int64_t>(b.ids.size()));
    push(prompt.back(), c.ids[0], d, prefix_doc, c.tape_prompt_row + P - 1);
    for (size_t j = 0; j + 1 < c.ids.size(); ++j) push(c.ids[j], c.ids[j + 1], d, prefix_doc, c.tape_row + j);
  }
  b.T = static_cast<int64_t>(b.ids.size());
  return t;
}

struct Result {
  LossReport report;
  std::vector<float> logp;
  std::vector<std::vector<float>> grads;
};

// A policy-gradient-like objective with a different weight per completion and token, the balance
// loss on.
Result Update(const ModelConfig& c, const ModelWeights& w, ParameterStore& store, const Taped& t,
              const std::vector<Completion>& comps, const FfnTape* tape) {
  Result r;
  LossOptions lo;
  lo.balance_alpha = 0.05;
  lo.tape = tape;
  lo.tape_rows = tape ? t.rows.data() : nullptr;
  lo.token_objective = [&](const float* logp, float* coef) {
    double loss = 0;
    for (size_t s = 0; s < comps.size(); ++s)
      for (size_t j = 0; j < comps[s].ids.size(); ++j) {
        const double weight = 0.3 * static_cast<double>(s % 3) - 0.2 - 0.05 * static_cast<double>(j);
        const int64_t n = t.first[s] + static_cast<int64_t>(j);
        r.logp.push_back(logp[n]);
        loss -= weight * logp[n];
        coef[n] = static_cast<float>(-weight);
      }
    return loss;
  };
  auto g = store.Grads();
  store.ZeroGrad();
  r.report = TrainForwardBackward(c, w, g.get(), t.batch, lo);
  for (const Parameter& p : store.params()) r.grads.push_back(p.grad);
  return r;
}

// ‖a − b‖ / ‖b‖ over every parameter's gradient.
double RelativeGradientError(const Result& a, const Result& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.grads.size(); ++i)
    for (size_t k = 0; k < a.grads[i].size(); ++k) {
      const double d = static_cast<double>(a.grads[i][k]) - b.grads[i][k];
      num += d * d;
      den += static_cast<double>(b.grads[i][k]) * b.grads[i][k];
    }
  return std::sqrt(num / den);
}

struct Case {
  bool shared;
  bool bf16;
  int threads;
  RolloutOptions::Split split;
};

class RolloutTapeTest : public ::testing::TestWithParam<Case> {};

TEST_P(RolloutTapeTest, UpdateFromTheTapeMatchesTheFullForward) {
  const Case k = GetParam();
  ModelConfig c = test_util::TinyTrainConfig(/*moe=*/true, 29, 8);
  if (!k.shared) c.n_shared_experts = 0;
  ParameterStore store = ParameterStore::Random(c, 13, 0.4);
  auto masters = store.Weights();
  // With bf16 products the rollout samples from packed bf16 copies and the update multiplies by
  // them, as `r1 grpo --precision bf16` does.
  std::unique_ptr<PackedBf16Weights> packed;
  if (k.bf16) packed = std::make_unique<PackedBf16Weights>(*masters, /*transposed=*/true);
  DeepSeekV3 model(c, packed ? packed->Views() : store.Weights());
  const std::unique_ptr<ModelWeights> views = packed ? packed->Views() : nullptr;
  const ModelWeights& w = views ? *views : *masters;

  const int saved = omp_get_max_threads();
  omp_set_num_threads(k.threads);
  const std::vector<std::vector<int32_t>> prompts = {{3, 17, 5, 9, 21}, {4, 8, 1}, {11}};
  RolloutOptions ro;
  ro.group = 4;
  ro.max_new_tokens = 7;
  ro.temperature = 1.0f;
  ro.seed = 21;
  ro.split = k.split;
  ro.max_batch = k.split == RolloutOptions::Split::kProducts ? 5 : 64;
  auto plain = SampleCompletions(model, prompts, ro);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  FfnTape tape(c, *masters);
  tape.Append(3);  // rows before the rollout's stay where they are
  auto comps = SampleCompletions(model, prompts, ro, nullptr, &tape);
  ASSERT_TRUE(comps.ok()) << comps.status().ToString();
  // Recording changes nothing sampled.
  ASSERT_EQ(comps->size(), plain->size());
  for (size_t i = 0; i < comps->size(); ++i) {
    EXPECT_EQ((*comps)[i].ids, (*plain)[i].ids) << "completion " << i;
    EXPECT_EQ((*comps)[i].logprobs, (*plain)[i].logprobs) << "completion " << i;
    EXPECT_GE((*comps)[i].tape_prompt_row, 3);
    EXPECT_GE((*comps)[i].tape_row, 3);
  }
  EXPECT_EQ(tape.rows(), 3 + (5 + 3 + 1) + 12 * (ro.max_new_tokens - 1));

  const Taped t = SharedPrefixBatch(prompts, *comps);
  std::unique_ptr<kernels::ScopedGemmPrecision> precision;
  if (k.bf16) precision = std::make_unique<kernels::ScopedGemmPrecision>(kernels::GemmPrecision::kBf16);
  const Result full = Update(c, w, store, t, *comps, nullptr);
  const Result taped = Update(c, w, store, t, *comps, &tape);
  omp_set_num_threads(saved);

  // The taped forward's last layer output is the rollout's, so are its log-probabilities (up to
  // the head's summation order and the rollout's f64 log-softmax).
  size_t i = 0;
  for (const Completion& comp : *comps)
    for (float lp : comp.logprobs) {
      EXPECT_NEAR(taped.logp[i], lp, 1e-5 * (1 + std::fabs(lp))) << "token " << i;
      ++i;
    }
  ASSERT_EQ(i, full.logp.size());
  EXPECT_EQ(taped.report.expert_load, full.report.expert_load);
  if (!k.bf16) {
    // f32: the two forwards differ only in the products' summation order.
    for (i = 0; i < full.logp.size(); ++i)
      EXPECT_NEAR(taped.logp[i], full.logp[i], 1e-5 * (1 + std::fabs(full.logp[i]))) << "token " << i;
    EXPECT_NEAR(taped.report.main, full.report.main, 1e-5 * std::fabs(full.report.main));
    EXPECT_NEAR(taped.report.balance, full.report.balance, 1e-5 * full.report.balance);
    EXPECT_NEAR(taped.report.entropy, full.report.entropy, 1e-5 * full.report.entropy);
    EXPECT_LE(RelativeGradientError(taped, full), 1e-5);
    return;
  }
  // bf16: the rollout's numerics are not the update's (its absorbed attention multiplies by an
  // f32 kv_b_proj, the update by its bf16 rounding), so the feed-forward activations on the tape
  // differ from the full forward's by bf16 rounding. The gradient from the tape is as close to the
  // exact (f32) gradient as the full bf16 forward's.
  precision.reset();
  const Result exact = Update(c, *masters, store, t, *comps, nullptr);
  const double e_full = RelativeGradientError(full, exact), e_taped = RelativeGradientError(taped, exact);
  EXPECT_LE(e_taped, 1.5 * e_full);
}

INSTANTIATE_TEST_SUITE_P(Paths, RolloutTapeTest,
                         ::testing::Values(Case{true, false, 2, RolloutOptions::Split::kSequences},
                                           Case{true, false, 1, RolloutOptions::Split::kSequences},
                                           Case{true, false, 2, RolloutOptions::Split::kProducts},
                                           Case{false, false, 2, RolloutOptions::Split::kSequences},
                                           Case{true, true, 2, RolloutOptions::Split::kSequences},
                                           Case{false, true, 1, RolloutOptions::Split::kSequences}),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           const Case& k = i.param;
                           return std::string(k.shared ? "Shared" : "NoShared") + (k.bf16 ? "Bf16" : "F32") +
                                  std::to_string(k.threads) + "Threads" +
                                  (k.split == RolloutOptions::Split::kProducts ? "SharedProducts" : "PerThread");
                         });

// The forward really reads the tape: a changed record changes the result.
TEST(RolloutTape, TheForwardReadsTheRecords) {
  const ModelConfig c = test_util::TinyTrainConfig(/*moe=*/true, 29, 8);
  ParameterStore store = ParameterStore::Random(c, 13, 0.4);
  auto w = store.Weights();
  DeepSeekV3 model(c, store.Weights());
  const std::vector<std::vector<int32_t>> prompts = {{3, 17, 5}, {4, 8}};
  RolloutOptions ro;
  ro.group = 2;
  ro.max_new_tokens = 5;
  ro.seed = 3;
  FfnTape tape(c, *w);
  auto comps = SampleCompletions(model, prompts, ro, nullptr, &tape);
  ASSERT_TRUE(comps.ok()) << comps.status().ToString();
  const Taped t = SharedPrefixBatch(prompts, *comps);
  const Result before = Update(c, *w, store, t, *comps, &tape);
  // The records of the first completion's first token: layer 1's (MoE, the last) first routed
  // expert output and layer 0's (dense) gate pre-activations and output reach the gradients only;
  // the last layer's output is what the head reads.
  ASSERT_GE((*comps)[0].ids.size(), 2u);
  const int64_t row = (*comps)[0].tape_row;
  for (int64_t i = 0; i < c.hidden_size; ++i) tape.routed_y(1, row, 0)[i] += 0.5f;
  const Result routed = Update(c, *w, store, t, *comps, &tape);
  EXPECT_GT(RelativeGradientError(routed, before), 1e-3);
  EXPECT_EQ(routed.logp, before.logp);
  for (int64_t i = 0; i < c.intermediate_size; ++i) tape.gu(0, row)[i] *= 2.0f;
  const Result gate = Update(c, *w, store, t, *comps, &tape);
  EXPECT_GT(RelativeGradientError(gate, routed), 1e-3);
  EXPECT_EQ(gate.logp, routed.logp);
  for (int64_t i = 0; i < c.hidden_size; ++i) tape.h_out(0, row)[i] += 0.5f;
  const Result dense = Update(c, *w, store, t, *comps, &tape);
  EXPECT_GT(RelativeGradientError(dense, gate), 1e-3);
  EXPECT_EQ(dense.logp, gate.logp);
  for (int64_t i = 0; i < c.hidden_size; ++i) tape.h_out(1, row)[i] += 0.5f;
  const Result last = Update(c, *w, store, t, *comps, &tape);
  EXPECT_NE(last.logp, dense.logp);
}

}  // namespace
}  // namespace r1
