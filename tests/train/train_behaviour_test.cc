// What training must do on tiny problems: overfit a small batch to near-zero loss, and with the
// auxiliary-loss-free rule (γ > 0) drive the expert loads towards balance.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/model_presets.h"
#include "common/command.h"
#include "core/file.h"
#include "core/rng.h"
#include "train/trainer.h"

namespace r1::train {
namespace {

using json = nlohmann::json;

// A tiny model config (the `tiny` preset) written to dir/config.json.
std::string WriteTinyConfig(const std::string& dir) {
  std::filesystem::create_directories(dir);
  ModelConfig c = cli::PresetConfig("tiny").value();
  const std::string path = dir + "/config.json";
  EXPECT_TRUE(WriteFileAtomic(path, c.ToJson()).ok());
  return path;
}

std::vector<json> Metrics(const std::string& path) {
  std::vector<json> rows;
  std::istringstream in(ReadFileToString(path).value());
  for (std::string line; std::getline(in, line);) rows.push_back(json::parse(line));
  return rows;
}

// f32 products, and bf16 products with f32 sums (--precision bf16).
class Overfit : public ::testing::TestWithParam<kernels::GemmPrecision> {};

TEST_P(Overfit, DrivesASmallBatchToNearZeroLoss) {
  const std::string dir = test_util::UniqueTempPath("r1_overfit");
  TrainOptions o;
  o.precision = GetParam();
  o.config_path = WriteTinyConfig(dir);
  // 2 windows of 16 tokens of random ids: pure memorization.
  Rng rng(9);
  std::string ids;
  for (int i = 0; i < 33; ++i) ids += std::to_string(2 + rng.Below(250)) + " ";
  ASSERT_TRUE(WriteFileAtomic(dir + "/d.ids", ids).ok());
  o.data = dir + "/d.ids";
  o.out = dir + "/out";
  o.metrics = dir + "/m.jsonl";
  o.steps = 150;
  o.batch = 2;
  o.seq = 16;
  o.lr = 1e-2f;
  o.weight_decay = 0;
  o.mtp_weight = 0;
  o.shuffle = false;
  o.quiet = true;
  auto s = Train(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const auto m = Metrics(o.metrics);
  EXPECT_GT(m.front()["loss_main"].get<double>(), 5.0);  // ~ln 256 at the start
  EXPECT_LT(m.back()["loss_main"].get<double>(), 0.05) << "the model did not memorize 30 tokens";
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(TrainBehaviour, Overfit,
                         ::testing::Values(kernels::GemmPrecision::kF32, kernels::GemmPrecision::kBf16),
                         [](const auto& info) { return info.param == kernels::GemmPrecision::kF32 ? "f32" : "bf16"; });

TEST(TrainBehaviour, BiasUpdatesBalanceTheExperts) {
  const std::string dir = test_util::UniqueTempPath("r1_balance");
  const std::string config = WriteTinyConfig(dir);
  Rng rng(4);
  std::string ids;
  for (int i = 0; i < 4000; ++i) ids += std::to_string(2 + rng.Below(250)) + " ";
  ASSERT_TRUE(WriteFileAtomic(dir + "/d.ids", ids).ok());
  // The weights barely move (tiny lr, no balance loss): only the correction biases act.
  auto run = [&](double gamma, const std::string& name) {
    TrainOptions o;
    o.config_path = config;
    o.init_std = 0.3;  // a router far from uniform, so the initial loads are skewed
    o.data = dir + "/d.ids";
    o.out = dir + "/" + name;
    o.metrics = dir + "/" + name + ".jsonl";
    o.steps = 40;
    o.batch = 16;  // 512 tokens a step: load noise well below the skew
    o.seq = 32;
    o.lr = 1e-9f;
    o.balance_alpha = 0;
    o.bias_update_speed = gamma;
    o.mtp_weight = 0;
    o.shuffle = false;
    o.quiet = true;
    EXPECT_TRUE(Train(o).ok());
    const auto m = Metrics(o.metrics);
    double last = 0;
    for (int i = 0; i < 10; ++i) last += m[m.size() - 1 - i]["expert_imbalance"].get<double>() / 10;
    return std::make_pair(m[0]["expert_imbalance"].get<double>(), last);
  };
  const auto [off_first, off_last] = run(0.0, "off");
  const auto [on_first, on_last] = run(0.02, "on");
  std::printf("max/mean expert load: γ=0 %.2f → %.2f; γ=0.02 %.2f → %.2f\n", off_first, off_last, on_first, on_last);
  EXPECT_EQ(on_first, off_first);  // the same first step: biases start at 0
  EXPECT_GT(on_first, 1.4) << "the initial routing should be skewed for this test to mean anything";
  EXPECT_LT(on_last, on_first - 0.15) << "the loads did not move towards balance";
  EXPECT_LT(on_last, off_last - 0.15) << "no better than without bias updates";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace r1::train
