// The training graph against the PyTorch autograd reference (tools/ref/train_ref.py): loss
// components, every parameter's gradient (relative error ≤ 1e-4 per tensor), and five AdamW
// steps with clipping and correction-bias updates (losses, pre-clip gradient norms, final biases).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/file.h"
#include "io/safetensors.h"
#include "kernels/gemm.h"
#include "model/parameters.h"
#include "model/train_graph.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace r1 {
namespace {

using json = nlohmann::json;

struct TrainFixture {
  std::string dir;
  json expected;
  TrainBatch batch;
  LossOptions opts;
  std::unique_ptr<io::Checkpoint> ck;
  ModelConfig config;
};

// ‖got − ref‖ / ‖ref‖ (the absolute ‖got‖ when ref is all zero: an expert no token reached must
// get a zero gradient).
double RelativeL2(const std::vector<float>& got, const std::vector<float>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (static_cast<double>(got[i]) - ref[i]) * (static_cast<double>(got[i]) - ref[i]);
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

double L2(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

// gtest's name for a fixture parameter: its directory name with '_' for '-'.
std::string FixtureTestName(const ::testing::TestParamInfo<const char*>& info) {
  std::string s = info.param;
  for (char& ch : s)
    if (ch == '-') ch = '_';
  return s;
}

TrainFixture Load(const std::string& variant) {
  TrainFixture f;
  f.dir = std::string(R1_SOURCE_DIR) + "/tests/fixtures/" + variant;
  f.expected = json::parse(ReadFileToString(f.dir + "/expected.json").value());
  EXPECT_EQ(f.expected["format_version"].get<int>(), 1);
  const json b = json::parse(ReadFileToString(f.dir + "/batch.json").value());
  f.batch.B = static_cast<int64_t>(b["ids"].size());
  f.batch.T = static_cast<int64_t>(b["ids"][0].size());
  for (int64_t r = 0; r < f.batch.B; ++r)
    for (int64_t t = 0; t < f.batch.T; ++t) {
      f.batch.ids.push_back(b["ids"][r][t].get<int32_t>());
      f.batch.targets.push_back(b["targets"][r][t].get<int32_t>());
      f.batch.doc.push_back(b["doc"][r][t].get<int32_t>());
    }
  f.opts.mtp_weight = b["mtp_weight"].get<double>();
  f.opts.balance_alpha = b["balance_alpha"].get<double>();
  auto ck = io::Checkpoint::Open(f.dir);
  EXPECT_TRUE(ck.ok()) << ck.status().ToString();
  f.ck = std::move(ck).value();
  f.config = ModelConfig::FromJson(f.ck->config_text(), f.dir).value();
  return f;
}

class TrainRefTest : public ::testing::TestWithParam<const char*> {};

TEST_P(TrainRefTest, LossesAndGradientsMatchAutograd) {
  TrainFixture f = Load(GetParam());
  auto store = ParameterStore::FromCheckpoint(f.config, *f.ck);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto w = store->Weights();
  auto g = store->Grads();
  const LossReport rep = TrainForwardBackward(f.config, *w, g.get(), f.batch, f.opts);
  const json& e = f.expected;
  EXPECT_NEAR(rep.loss, e["loss"].get<double>(), 1e-5 * e["loss"].get<double>());
  EXPECT_NEAR(rep.main, e["loss_main"].get<double>(), 1e-5 * e["loss_main"].get<double>());
  EXPECT_NEAR(rep.mtp, e["loss_mtp"].get<double>(), 1e-5 * std::max(1e-3, e["loss_mtp"].get<double>()));
  EXPECT_NEAR(rep.balance, e["loss_balance"].get<double>(), 1e-5 * std::max(1e-3, e["loss_balance"].get<double>()));

  auto ref = io::SafetensorsFile::Open(f.dir + "/grads.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  int compared = 0;
  double worst = 0;
  std::string worst_name;
  for (const Parameter& p : store->params()) {
    if (!p.trainable) {
      EXPECT_EQ(ref.value()->tensors().count(p.spec.name), 0u) << p.spec.name << " must get no gradient";
      continue;
    }
    auto it = ref.value()->tensors().find(p.spec.name);
    ASSERT_NE(it, ref.value()->tensors().end()) << "reference lacks " << p.spec.name;
    const std::vector<float> rg = ToF32(it->second);
    ASSERT_EQ(rg.size(), p.grad.size()) << p.spec.name;
    const double rel = RelativeL2(p.grad, rg);
    EXPECT_LE(rel, 1e-4) << p.spec.name << " (|g_ref| = " << L2(rg) << ")";
    if (rel > worst) {
      worst = rel;
      worst_name = p.spec.name;
    }
    ++compared;
  }
  std::printf("[ %s ] %d gradient tensors, worst relative error %.2e (%s)\n", GetParam(), compared, worst,
              worst_name.c_str());
  EXPECT_EQ(compared, static_cast<int>(ref.value()->tensors().size()));
}

// With bf16 products (--precision bf16) against the reference's exact model of them
// (train_ref.BF16_PRODUCTS: operands rounded to bf16, sums in float64, the router's product
// unrounded): loss components and every gradient. r1's operands are f32 values like the
// reference's, so the two round them alike — except an operand within f32 error of a bf16 tie,
// which then differs by one bf16 step (2⁻⁸ relative) and moves the gradients downstream of it by
// up to ~1e-3 (train-direct-q: such an operand in layer 0's attention backward moves 11 of its 45
// tensors past 1e-5, five of them by 4–9e-4; the other fixtures' tensors are all within 3e-7).
// Hence: every tensor within 2e-3, and three quarters of them within 1e-5. The two references differ by 1e-2 or more
// somewhere, so products left in f32 fail.
class TrainRefBf16Test : public ::testing::TestWithParam<const char*> {};

TEST_P(TrainRefBf16Test, LossesAndGradientsMatchTheRoundedReference) {
  TrainFixture f = Load(GetParam());
  auto store = ParameterStore::FromCheckpoint(f.config, *f.ck);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  LossReport rep;
  {
    kernels::ScopedGemmPrecision bf16(kernels::GemmPrecision::kBf16);
    rep = TrainForwardBackward(f.config, *store->Weights(), store->Grads().get(), f.batch, f.opts);
  }
  const json& e = f.expected["bf16"];
  ASSERT_TRUE(e.is_object()) << "fixture without bf16 data";
  EXPECT_NEAR(rep.loss, e["loss"].get<double>(), 1e-5 * e["loss"].get<double>());
  EXPECT_NEAR(rep.main, e["loss_main"].get<double>(), 1e-5 * e["loss_main"].get<double>());
  EXPECT_NEAR(rep.mtp, e["loss_mtp"].get<double>(), 1e-5 * std::max(1e-3, e["loss_mtp"].get<double>()));
  EXPECT_NEAR(rep.balance, e["loss_balance"].get<double>(), 1e-5 * std::max(1e-3, e["loss_balance"].get<double>()));
  auto ref = io::SafetensorsFile::Open(f.dir + "/grads_bf16.safetensors");
  auto ref32 = io::SafetensorsFile::Open(f.dir + "/grads.safetensors");
  ASSERT_TRUE(ref.ok() && ref32.ok());
  double worst = 0, gap = 0;
  std::string worst_name;
  int compared = 0, exact = 0;
  for (const Parameter& p : store->params()) {
    if (!p.trainable) continue;
    auto it = ref.value()->tensors().find(p.spec.name);
    ASSERT_NE(it, ref.value()->tensors().end()) << "reference lacks " << p.spec.name;
    const std::vector<float> rg = ToF32(it->second);
    ASSERT_EQ(rg.size(), p.grad.size()) << p.spec.name;
    const double rel = RelativeL2(p.grad, rg);
    EXPECT_LE(rel, 2e-3) << p.spec.name << " (|g_ref| = " << L2(rg) << ")";
    exact += rel <= 1e-5;
    if (rel > worst) {
      worst = rel;
      worst_name = p.spec.name;
    }
    ++compared;
    if (L2(rg) > 0) gap = std::max(gap, RelativeL2(ToF32(ref32.value()->tensors().at(p.spec.name)), rg));
  }
  std::printf(
      "[ %s ] bf16 products: %d gradient tensors, %d within 1e-5, worst relative error %.2e (%s); the f32 "
      "reference is up to %.1e away\n",
      GetParam(), compared, exact, worst, worst_name.c_str(), gap);
  EXPECT_EQ(compared, static_cast<int>(ref.value()->tensors().size()));
  EXPECT_GE(4 * exact, 3 * compared);
  EXPECT_GT(gap, 1e-2) << "the fixture's bf16 and f32 references are too close to tell the precisions apart";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TrainRefBf16Test,
                         ::testing::Values("train-qlora-mtp-bf16", "train-direct-q", "train-dense"), FixtureTestName);

TEST_P(TrainRefTest, FiveAdamWStepsMatchReference) {
  TrainFixture f = Load(GetParam());
  auto store = ParameterStore::FromCheckpoint(f.config, *f.ck);
  ASSERT_TRUE(store.ok());
  const json& a = f.expected["adam"];
  train::AdamWConfig cfg;
  cfg.beta1 = a["beta1"].get<float>();
  cfg.beta2 = a["beta2"].get<float>();
  cfg.eps = a["eps"].get<float>();
  cfg.weight_decay = a["weight_decay"].get<float>();
  cfg.clip = a["clip"].get<float>();
  train::AdamW opt(&store.value(), cfg);
  auto w = store->Weights();
  auto g = store->Grads();
  // No ZeroGrad between steps: AdamW::Step leaves every gradient zero (checked after each step;
  // left-over gradients would also pull the later steps off the reference).
  for (int s = 0; s < a["steps"].get<int>(); ++s) {
    const LossReport rep = TrainForwardBackward(f.config, *w, g.get(), f.batch, f.opts);
    const double ref_loss = a["losses"][s].get<double>();
    EXPECT_NEAR(rep.loss, ref_loss, 2e-5 * ref_loss) << "step " << s;
    const double norm = opt.Step(a["lr"].get<float>());
    const double ref_norm = a["grad_norms"][s].get<double>();
    EXPECT_NEAR(norm, ref_norm, 1e-4 * ref_norm) << "step " << s;
    for (const Parameter& p : store->params())
      for (float x : p.grad) ASSERT_EQ(x, 0.0f) << p.spec.name << " after step " << s;
    train::UpdateCorrectionBias(&store.value(), rep.expert_load, a["bias_update_speed"].get<double>());
  }
  for (const auto& [name, values] : a["final_correction_bias"].items()) {
    const Parameter* p = store->Find(name);
    ASSERT_NE(p, nullptr) << name;
    for (size_t i = 0; i < values.size(); ++i) EXPECT_NEAR(p->value[i], values[i].get<double>(), 1e-6) << name << "[" << i << "]";
  }
}

// The policy-gradient path: with coef = −1/n it is the cross-entropy, so its gradients equal the
// reference's (train-direct-q has no MTP and α = 0); at temperature τ it is checked by finite
// differences of its own loss.
TEST(PolicyGradient, MatchesCrossEntropyAndFiniteDifferences) {
  TrainFixture f = Load("train-direct-q");
  auto store = ParameterStore::FromCheckpoint(f.config, *f.ck);
  ASSERT_TRUE(store.ok());
  auto w = store->Weights();
  auto g = store->Grads();
  int64_t n = 0;
  for (int32_t t : f.batch.targets) n += t >= 0;
  LossOptions pg;
  pg.token_objective = [&](const float* logp, float* coef) {
    double l = 0;
    for (size_t i = 0; i < f.batch.targets.size(); ++i) {
      if (f.batch.targets[i] < 0) continue;
      l -= logp[i] / static_cast<double>(n);
      coef[i] = -1.0f / static_cast<float>(n);
    }
    return l;
  };
  const LossReport rep = TrainForwardBackward(f.config, *w, g.get(), f.batch, pg);
  EXPECT_NEAR(rep.main, f.expected["loss_main"].get<double>(), 1e-5 * rep.main);
  EXPECT_GT(rep.entropy, 0.0);
  auto ref = io::SafetensorsFile::Open(f.dir + "/grads.safetensors");
  ASSERT_TRUE(ref.ok());
  for (const Parameter& p : store->params()) {
    if (!p.trainable) continue;
    const std::vector<float> rg = ToF32(ref.value()->tensors().at(p.spec.name));
    EXPECT_LE(RelativeL2(p.grad, rg), 1e-4) << p.spec.name;
  }
  // Temperature 2 and a non-uniform objective: L = Σ c_n·logp_n with fixed c_n.
  pg.temperature = 2.0f;
  std::vector<float> c(f.batch.targets.size());
  for (size_t i = 0; i < c.size(); ++i) c[i] = 0.1f * static_cast<float>(static_cast<int>(i % 7) - 3);
  pg.token_objective = [&](const float* logp, float* coef) {
    double l = 0;
    for (size_t i = 0; i < c.size(); ++i)
      if (f.batch.targets[i] >= 0) {
        l += c[i] * static_cast<double>(logp[i]);
        coef[i] = c[i];
      }
    return l;
  };
  store->ZeroGrad();
  TrainForwardBackward(f.config, *w, g.get(), f.batch, pg);
  Parameter* q = store->Find("model.layers.1.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  for (size_t i : {size_t{0}, size_t{17}, size_t{101}}) {
    const float x0 = q->value[i];
    const float h = 1e-2f;
    q->value[i] = x0 + h;
    const double lp = TrainForwardBackward(f.config, *w, nullptr, f.batch, pg).main;
    q->value[i] = x0 - h;
    const double lm = TrainForwardBackward(f.config, *w, nullptr, f.batch, pg).main;
    q->value[i] = x0;
    const double num = (lp - lm) / (2 * h);
    EXPECT_NEAR(q->grad[i], num, 2e-3 * std::max(1.0, std::fabs(num))) << "entry " << i;
  }
}

// Twenty steps of the real training loop (`r1 pretrain --no-shuffle` on an id stream: step s takes
// windows s·B … s·B+B−1) against the float64 reference doing the same steps
// (tools/ref/make_stream_fixture.py). Tolerances 1e-5 (loss) and 3e-5 (grad norm) relative; the engine
// computes in f32 and measured at most 1.6e-7 and 4.9e-6 (OpenBLAS's default and SkylakeX cores).
// Two properties of the fixture keep f32 rounding from growing: every routing selection clears a tie
// by ≥ 1e-4 (the generator draws seeds until it does), and the learning rate 3e-3 keeps the steps
// stable — at 1e-2 this tiny model's steps amplify any rounding difference (PyTorch's own f32 run
// drifted from float64 by 2.7e-4 in grad norm by step 20), at 3e-3 PyTorch's f32 run stays within 6e-7.
// Halving the weight decay moves the losses by 2e-3, so the check still sees the optimizer.
TEST(TrainStream, TwentyStepsOnAnIdStreamMatchReference) {
  const std::string dir = std::string(R1_SOURCE_DIR) + "/tests/fixtures/train-stream";
  const json e = json::parse(ReadFileToString(dir + "/expected.json").value());
  train::TrainOptions o;
  o.init_dir = std::string(R1_SOURCE_DIR) + "/tests/fixtures/" + e["model"].get<std::string>();
  o.data = dir + "/stream.ids";
  const std::string out = ::testing::TempDir() + "/r1_train_stream." + std::to_string(::getpid());
  o.out = out;
  o.metrics = out + ".jsonl";
  std::remove(o.metrics.c_str());
  o.steps = e["steps"].get<int64_t>();
  o.batch = e["batch"].get<int64_t>();
  o.seq = e["seq"].get<int64_t>();
  o.lr = e["lr"].get<float>();
  o.weight_decay = e["weight_decay"].get<float>();
  o.clip = e["clip"].get<float>();
  o.bias_update_speed = e["bias_update_speed"].get<double>();
  o.mtp_weight = e["mtp_weight"].get<double>();
  o.balance_alpha = e["balance_alpha"].get<double>();
  o.shuffle = false;
  o.quiet = true;
  auto s = train::Train(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::istringstream in(ReadFileToString(o.metrics).value());
  std::string line;
  int i = 0;
  for (; std::getline(in, line); ++i) {
    const json m = json::parse(line);
    const double ref_loss = e["losses"][i].get<double>(), ref_norm = e["grad_norms"][i].get<double>();
    EXPECT_NEAR(m["loss"].get<double>(), ref_loss, 1e-5 * ref_loss) << "step " << i + 1;
    EXPECT_NEAR(m["grad_norm"].get<double>(), ref_norm, 3e-5 * ref_norm) << "step " << i + 1;
  }
  EXPECT_EQ(i, 20);
  std::filesystem::remove_all(out);
  std::remove(o.metrics.c_str());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TrainRefTest,
                         ::testing::Values("train-qlora-mtp", "train-qlora-mtp-bf16", "train-direct-q", "train-dense"),
                         FixtureTestName);

}  // namespace
}  // namespace r1
