// Shared prefixes in the training graph (TrainBatch::prefix): a prompt computed
// once and continued by several completions gives the same losses,
// log-probabilities and gradients as each prompt + completion in a row of its
// own, up to float rounding — with the MoE balance loss on.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/tiny_config.h"
#include "kernels/gemm.h"
#include "model/parameters.h"
#include "model/train_graph.h"
#include "model/weights.h"

namespace r1 {
namespace {

ModelConfig Config(bool moe) { return test_util::TinyTrainConfig(moe, 29, 8); }

struct Group {
  std::vector<int32_t> prompt;
  std::vector<std::vector<int32_t>> completions;
};

std::vector<Group> MakeGroups(const std::vector<std::vector<int64_t>> &lengths, int64_t P, int64_t V) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(V) - 1);
  std::vector<Group> groups;
  for (const auto &lens : lengths) {
    Group g;
    for (int64_t i = 0; i < P; ++i) g.prompt.push_back(tok(rng));
    for (int64_t L : lens) {
      g.completions.emplace_back();
      for (int64_t i = 0; i < L; ++i) g.completions.back().push_back(tok(rng));
    }
    groups.push_back(std::move(g));
  }
  return groups;
}

// One row per prompt + completion, padded to the longest; first[s] = the
// position predicting completion s's first token.
TrainBatch RowPerSequence(const std::vector<Group> &groups, std::vector<int64_t> *first) {
  TrainBatch b;
  for (const Group &g : groups)
    for (const auto &c : g.completions) {
      ++b.B;
      b.T = std::max<int64_t>(b.T, static_cast<int64_t>(g.prompt.size() + c.size()) - 1);
    }
  b.ids.assign(static_cast<size_t>(b.B * b.T), 0);
  b.targets.assign(b.ids.size(), -1);
  b.doc.assign(b.ids.size(), -1);
  int64_t r = 0;
  for (const Group &g : groups)
    for (const auto &c : g.completions) {
      std::vector<int32_t> seq = g.prompt;
      seq.insert(seq.end(), c.begin(), c.end());
      const int64_t P = static_cast<int64_t>(g.prompt.size());
      for (int64_t t = 0; t + 1 < static_cast<int64_t>(seq.size()); ++t) {
        b.ids[r * b.T + t] = seq[t];
        b.doc[r * b.T + t] = 0;
        if (t + 1 >= P) b.targets[r * b.T + t] = seq[t + 1];
      }
      first->push_back(r * b.T + P - 1);
      ++r;
    }
  return b;
}

// One row for all groups: each prompt but its last token once (a prefix), then
// per completion the prompt's last token and the completion (continuing the
// prefix).
TrainBatch SharedPrefixes(const std::vector<Group> &groups, std::vector<int64_t> *first) {
  TrainBatch b;
  b.B = 1;
  int32_t doc = 0;
  auto push = [&](int32_t id, int32_t target, int32_t d, int32_t prefix) {
    b.ids.push_back(id);
    b.targets.push_back(target);
    b.doc.push_back(d);
    b.prefix.push_back(prefix);
  };
  for (const Group &g : groups) {
    const int32_t prefix_doc = doc++;
    for (size_t i = 0; i + 1 < g.prompt.size(); ++i) push(g.prompt[i], -1, prefix_doc, -1);
    for (const auto &c : g.completions) {
      const int32_t d = doc++;
      first->push_back(static_cast<int64_t>(b.ids.size()));
      push(g.prompt.back(), c[0], d, prefix_doc);
      for (size_t i = 0; i + 1 < c.size(); ++i) push(c[i], c[i + 1], d, prefix_doc);
    }
  }
  b.T = static_cast<int64_t>(b.ids.size());
  return b;
}

void ExpectSameGradients(ParameterStore &store, const std::vector<std::vector<float>> &want) {
  for (size_t i = 0; i < store.params().size(); ++i) {
    const Parameter &p = store.params()[i];
    double num = 0, den = 0;
    for (size_t k = 0; k < p.grad.size(); ++k) {
      num += (p.grad[k] - want[i][k]) * (p.grad[k] - want[i][k]);
      den += want[i][k] * want[i][k];
    }
    EXPECT_LE(std::sqrt(num), 1e-5 * std::sqrt(den) + 1e-9) << p.spec.name;
  }
}

class SharedPrefixTest : public ::testing::TestWithParam<bool> {};

TEST_P(SharedPrefixTest, CrossEntropyAndBalanceLossMatchRowPerSequence) {
  const ModelConfig c = Config(GetParam());
  // Equal lengths: no padding in the row-per-sequence batch, whose balance loss
  // counts every row.
  const auto groups = MakeGroups({{4, 4, 4}, {4, 4}}, 5, c.vocab_size);
  std::vector<int64_t> fa, fb;
  const TrainBatch a = RowPerSequence(groups, &fa), b = SharedPrefixes(groups, &fb);
  ParameterStore store = ParameterStore::Random(c, 3, 0.3);
  auto w = store.Weights();
  auto g = store.Grads();
  LossOptions lo;
  lo.balance_alpha = 0.3;
  store.ZeroGrad();
  const LossReport ra = TrainForwardBackward(c, *w, g.get(), a, lo);
  std::vector<std::vector<float>> want;
  for (const Parameter &p : store.params()) want.push_back(p.grad);
  store.ZeroGrad();
  const LossReport rb = TrainForwardBackward(c, *w, g.get(), b, lo);
  EXPECT_EQ(ra.main_tokens, rb.main_tokens);
  EXPECT_NEAR(ra.main, rb.main, 1e-5 * std::fabs(ra.main));
  if (GetParam()) {
    EXPECT_GT(ra.balance, 0.0);
    EXPECT_NEAR(ra.balance, rb.balance, 1e-5 * ra.balance);
    // The shared batch routes each prompt token once: (4 + 3·4) + (4 + 2·4)
    // tokens, top-2.
    for (const auto &layer : rb.expert_load) {
      int64_t routed = 0;
      for (int64_t n : layer) routed += n;
      EXPECT_EQ(routed, (16 + 12) * 2);
    }
  }
  ExpectSameGradients(store, want);
}

TEST_P(SharedPrefixTest, TokenObjectiveMatchesRowPerSequenceWithUnequalLengths) {
  const ModelConfig c = Config(GetParam());
  const auto groups = MakeGroups({{3, 6, 1}, {5, 2}}, 4, c.vocab_size);
  std::vector<int64_t> fa, fb;
  const TrainBatch a = RowPerSequence(groups, &fa), b = SharedPrefixes(groups, &fb);
  ASSERT_EQ(fa.size(), fb.size());
  std::vector<int64_t> lens;
  for (const Group &g : groups)
    for (const auto &comp : g.completions) lens.push_back(static_cast<int64_t>(comp.size()));
  ParameterStore store = ParameterStore::Random(c, 5, 0.3);
  auto w = store.Weights();
  auto g = store.Grads();
  // A policy-gradient-like objective with a different weight per completion
  // token.
  auto run = [&](const TrainBatch &batch, const std::vector<int64_t> &first, std::vector<double> *logps) {
    LossOptions lo;
    lo.temperature = 0.8f;
    lo.token_objective = [&](const float *logp, float *coef) {
      double loss = 0;
      for (size_t s = 0; s < first.size(); ++s)
        for (int64_t j = 0; j < lens[s]; ++j) {
          const double weight = 0.1 * static_cast<double>(s + 1) - 0.05 * static_cast<double>(j);
          logps->push_back(logp[first[s] + j]);
          loss -= weight * logp[first[s] + j];
          coef[first[s] + j] = static_cast<float>(-weight);
        }
      return loss;
    };
    store.ZeroGrad();
    return TrainForwardBackward(c, *w, g.get(), batch, lo);
  };
  std::vector<double> la, lb;
  const LossReport ra = run(a, fa, &la);
  std::vector<std::vector<float>> want;
  for (const Parameter &p : store.params()) want.push_back(p.grad);
  const LossReport rb = run(b, fb, &lb);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-5) << "completion token " << i;
  EXPECT_NEAR(ra.main, rb.main, 1e-5 * std::fabs(ra.main));
  EXPECT_NEAR(ra.entropy, rb.entropy, 1e-5 * ra.entropy);
  ExpectSameGradients(store, want);
}

// `r1 grpo --precision bf16`'s update multiplies its forward by the rollout's packed bf16 copies
// (PackedBf16Weights) and its backward by those of the transposes: the same bits, loss and
// gradients, as packing each weight per product. 8
// groups of 6 completions make a row of 248 tokens: two of PackedMatMul's 144-row blocks.
TEST_P(SharedPrefixTest, Bf16UpdateOnPackedCopiesGivesTheSameBits) {
  const ModelConfig c = Config(GetParam());
  std::vector<std::vector<int64_t>> lengths(8, std::vector<int64_t>{3, 7, 1, 5, 6, 4});
  const auto groups = MakeGroups(lengths, 6, c.vocab_size);
  std::vector<int64_t> first;
  const TrainBatch b = SharedPrefixes(groups, &first);
  ASSERT_GT(b.T, 144);
  ParameterStore store = ParameterStore::Random(c, 7, 0.3);
  auto masters = store.Weights();
  PackedBf16Weights packed(*masters, /*transposed=*/true);
  auto views = packed.Views();
  ASSERT_NE(views->lm_head.bf16_packed, nullptr);
  ASSERT_NE(views->lm_head.bf16_packed_t, nullptr);
  auto g = store.Grads();
  kernels::ScopedGemmPrecision bf16(kernels::GemmPrecision::kBf16);
  auto run = [&](const ModelWeights &w, std::vector<float> *logps) {
    LossOptions lo;
    lo.balance_alpha = 0.3;
    lo.token_objective = [&](const float *logp, float *coef) {
      logps->assign(logp, logp + b.T);
      double loss = 0;
      for (int64_t t = 0; t < b.T; ++t)
        if (b.targets[t] >= 0) {
          const double weight = 0.01 * static_cast<double>(t % 7) - 0.03;
          loss -= weight * logp[t];
          coef[t] = static_cast<float>(-weight);
        }
      return loss;
    };
    store.ZeroGrad();
    return TrainForwardBackward(c, w, g.get(), b, lo);
  };
  std::vector<float> la, lb;
  const LossReport ra = run(*masters, &la);
  std::vector<std::vector<float>> want;
  for (const Parameter &p : store.params()) want.push_back(p.grad);
  const LossReport rb = run(*views, &lb);
  EXPECT_EQ(ra.main, rb.main);
  EXPECT_EQ(ra.balance, rb.balance);
  EXPECT_EQ(la, lb);
  for (size_t i = 0; i < store.params().size(); ++i)
    EXPECT_EQ(store.params()[i].grad, want[i]) << store.params()[i].spec.name;
}

INSTANTIATE_TEST_SUITE_P(DenseAndMoe, SharedPrefixTest, ::testing::Values(false, true));

TEST(SharedPrefix, PositionsContinueAfterThePrefix) {
  TrainBatch b;
  b.B = 1;
  b.T = 9;
  b.ids.assign(9, 1);
  b.targets.assign(9, -1);
  b.doc = {7, 7, 7, 3, 3, 4, 4, 4, 9};
  b.prefix = {-1, -1, -1, 7, 7, 7, 7, 7, -1};
  EXPECT_EQ(DocumentPositions(b), (std::vector<int32_t>{0, 1, 2, 3, 4, 3, 4, 5, 0}));
}

}  // namespace
}  // namespace r1
