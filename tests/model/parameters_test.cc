// ParameterStore's extra gradient buffers (GradCopy): a backward into a copy leaves the store's
// gradients alone and gives the same numbers; AddGrads adds the copy in and zeroes it.
#include <gtest/gtest.h>

#include <random>

#include "common/tiny_config.h"
#include "model/parameters.h"
#include "model/train_graph.h"

namespace r1 {
namespace {

TEST(GradCopy, BackwardIntoACopyThenAddGrads) {
  const ModelConfig c = test_util::TinyTrainConfig(/*moe=*/true, 31, 0);
  ParameterStore store = ParameterStore::Random(c, 9, 0.3);
  TrainBatch b;
  b.B = 2;
  b.T = 6;
  std::mt19937 rng(3);
  for (int i = 0; i < 12; ++i) {
    b.ids.push_back(static_cast<int32_t>(rng() % 31));
    b.targets.push_back(static_cast<int32_t>(rng() % 31));
    b.doc.push_back(0);
  }
  auto w = store.Weights();
  ParameterStore::GradCopy copy = store.NewGradCopy();
  store.ZeroGrad();
  TrainForwardBackward(c, *w, copy.views.get(), b, LossOptions{});
  for (const Parameter& p : store.params())
    for (float g : p.grad) ASSERT_EQ(g, 0.0f) << p.spec.name;  // the store's own gradients untouched
  auto grads = store.Grads();
  TrainForwardBackward(c, *w, grads.get(), b, LossOptions{});
  int nonzero = 0;
  for (size_t i = 0; i < store.params().size(); ++i) {
    EXPECT_EQ(copy.bufs[i], store.params()[i].grad) << store.params()[i].spec.name;
    for (float g : copy.bufs[i]) nonzero += g != 0.0f;
  }
  EXPECT_GT(nonzero, 100);
  const std::vector<std::vector<float>> once = copy.bufs;
  store.AddGrads(copy);
  for (size_t i = 0; i < store.params().size(); ++i) {
    for (size_t k = 0; k < once[i].size(); ++k) ASSERT_EQ(store.params()[i].grad[k], 2.0f * once[i][k]);
    for (float g : copy.bufs[i]) ASSERT_EQ(g, 0.0f);
  }
}

}  // namespace
}  // namespace r1
