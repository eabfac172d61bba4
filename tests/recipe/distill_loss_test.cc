// The logit-distillation term of the training loss (LossOptions::teacher_probs): its value is
// KL(teacher ‖ softmax(logits)) averaged over the trained positions, its gradient matches central
// finite differences on every parameter tensor, and leaving it off changes nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/tiny_config.h"
#include "model/parameters.h"
#include "model/train_graph.h"

namespace r1 {
namespace {

ModelConfig Config(bool moe) { return test_util::TinyTrainConfig(moe, 23, 0); }

struct Fixture {
  ModelConfig config;
  TrainBatch batch;
  std::vector<float> teacher;
};

Fixture Make(bool moe) {
  Fixture f{Config(moe), {}, {}};
  const int64_t B = 2, T = 7, V = f.config.vocab_size;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(V) - 1);
  std::normal_distribution<float> gauss(0.0f, 1.5f);
  f.batch.B = B;
  f.batch.T = T;
  for (int64_t i = 0; i < B * T; ++i) {
    f.batch.ids.push_back(tok(rng));
    f.batch.targets.push_back(i % 3 == 0 ? -1 : tok(rng));  // some positions untrained
    f.batch.doc.push_back(i < 10 ? 0 : 1);
  }
  f.teacher.assign(static_cast<size_t>(B * T * V), 0.0f);
  for (int64_t n = 0; n < B * T; ++n) {
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += f.teacher[n * V + v] = std::exp(gauss(rng));
    for (int64_t v = 0; v < V; ++v) f.teacher[n * V + v] = static_cast<float>(f.teacher[n * V + v] / sum);
  }
  return f;
}

class DistillLossTest : public ::testing::TestWithParam<bool> {};

TEST_P(DistillLossTest, GradientMatchesFiniteDifferences) {
  const Fixture f = Make(GetParam());
  ParameterStore store = ParameterStore::Random(f.config, 3, 0.3);
  auto w = store.Weights();
  auto g = store.Grads();
  const double kWeight = 0.7;
  LossOptions with;
  with.teacher_probs = f.teacher.data();
  with.distill_weight = kWeight;
  LossOptions without;
  // Gradient of the distillation term alone: with minus without (the rest is computed identically).
  store.ZeroGrad();
  const LossReport rep = TrainForwardBackward(f.config, *w, g.get(), f.batch, with);
  std::vector<std::vector<float>> analytic;
  for (const Parameter& p : store.params()) analytic.push_back(p.grad);
  store.ZeroGrad();
  const LossReport rep0 = TrainForwardBackward(f.config, *w, g.get(), f.batch, without);
  EXPECT_GT(rep.distill, 0.0);
  EXPECT_EQ(rep0.distill, 0.0);
  EXPECT_EQ(rep.main, rep0.main);
  EXPECT_NEAR(rep.loss, rep0.loss + kWeight * rep.distill, 1e-9);
  int checked = 0;
  for (size_t i = 0; i < store.params().size(); ++i) {
    Parameter& p = store.params()[i];
    if (!p.trainable) continue;
    for (size_t k = 0; k < p.grad.size(); ++k) analytic[i][k] -= p.grad[k];
    // The entry with the largest gradient of the term, and the first entry.
    size_t best = 0;
    for (size_t k = 0; k < p.grad.size(); ++k)
      if (std::fabs(analytic[i][k]) > std::fabs(analytic[i][best])) best = k;
    for (size_t k : {best, size_t{0}}) {
      const float saved = p.value[k];
      const float eps = 1e-2f;
      p.value[k] = saved + eps;
      const double up = TrainForwardBackward(f.config, *w, nullptr, f.batch, with).distill;
      p.value[k] = saved - eps;
      const double down = TrainForwardBackward(f.config, *w, nullptr, f.batch, with).distill;
      p.value[k] = saved;
      const double fd = kWeight * (up - down) / (2.0 * eps);
      const double an = analytic[i][k];
      EXPECT_NEAR(an, fd, 2e-4 + 2e-2 * std::fabs(fd)) << p.spec.name << "[" << k << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

TEST_P(DistillLossTest, ValueIsTheKlDivergence) {
  // With every logit weight at zero the student is uniform: KL = Σ q log q + log V per position.
  const Fixture f = Make(GetParam());
  ParameterStore store = ParameterStore::Random(f.config, 3, 0.3);
  for (float& x : store.Find("lm_head.weight")->value) x = 0.0f;
  auto w = store.Weights();
  LossOptions with;
  with.teacher_probs = f.teacher.data();
  with.distill_weight = 1.0;
  const LossReport rep = TrainForwardBackward(f.config, *w, nullptr, f.batch, with);
  const int64_t V = f.config.vocab_size;
  double kl = 0;
  int64_t n_trained = 0;
  for (int64_t n = 0; n < f.batch.B * f.batch.T; ++n) {
    if (f.batch.targets[n] < 0) continue;
    ++n_trained;
    for (int64_t v = 0; v < V; ++v) {
      const double q = f.teacher[n * V + v];
      kl += q * (std::log(q) + std::log(static_cast<double>(V)));
    }
  }
  EXPECT_NEAR(rep.distill, kl / static_cast<double>(n_trained), 1e-5);
}

TEST_P(DistillLossTest, OffIsUnchanged) {
  // teacher_probs with weight 0 (and none at all) give bit-identical losses and gradients.
  const Fixture f = Make(GetParam());
  ParameterStore store = ParameterStore::Random(f.config, 5, 0.3);
  auto w = store.Weights();
  auto g = store.Grads();
  LossOptions zero;
  zero.teacher_probs = f.teacher.data();
  zero.distill_weight = 0.0;
  store.ZeroGrad();
  const LossReport a = TrainForwardBackward(f.config, *w, g.get(), f.batch, LossOptions{});
  std::vector<std::vector<float>> ga;
  for (const Parameter& p : store.params()) ga.push_back(p.grad);
  store.ZeroGrad();
  const LossReport b = TrainForwardBackward(f.config, *w, g.get(), f.batch, zero);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(b.distill, 0.0);
  for (size_t i = 0; i < store.params().size(); ++i) EXPECT_EQ(ga[i], store.params()[i].grad) << store.params()[i].spec.name;
}

INSTANTIATE_TEST_SUITE_P(DenseAndMoe, DistillLossTest, ::testing::Values(false, true));

}  // namespace
}  // namespace r1
