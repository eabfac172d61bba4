#include "rl/reward.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <unistd.h>

namespace r1::rl {
namespace {

class RewardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Task>> t = MakeTask("arithmetic", "");
    ASSERT_TRUE(t.ok());
    task_ = std::move(t).value();
    p_ = task_->Generate(Split::kTrain, 0);
    p_.data = {{"a", 47}, {"b", 85}, {"op", "+"}, {"result", 132}};
    p_.answer = "132";
  }
  Reward R(const std::string& completion, int64_t tokens = 10, const RewardConfig& cfg = {}) {
    return ComputeReward(*task_, p_, completion, tokens, cfg);
  }
  std::unique_ptr<Task> task_;
  Problem p_;
};

TEST_F(RewardTest, Composition) {
  Reward r = R("7+5=12 ...\n</think>\n\nThe answer is \\boxed{132}.");
  EXPECT_TRUE(r.correct);
  EXPECT_TRUE(r.well_formed);
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(r.format, 0.1);
  EXPECT_DOUBLE_EQ(r.overlong, 0.0);
  EXPECT_DOUBLE_EQ(r.total, 1.1);

  r = R("steps\n</think>\n\n\\boxed{133}");  // well formed, wrong
  EXPECT_FALSE(r.correct);
  EXPECT_TRUE(r.well_formed);
  EXPECT_DOUBLE_EQ(r.total, 0.1);

  r = R("just \\boxed{132}");  // correct, no </think>
  EXPECT_TRUE(r.correct);
  EXPECT_FALSE(r.well_formed);
  EXPECT_DOUBLE_EQ(r.total, 1.0);

  r = R("nothing useful");
  EXPECT_DOUBLE_EQ(r.total, 0.0);
  EXPECT_FALSE(r.correct || r.well_formed);

  RewardConfig cfg;
  cfg.accuracy_weight = 2.0;
  cfg.format_weight = 0.5;
  r = R("x</think>\\boxed{132}", 10, cfg);
  EXPECT_DOUBLE_EQ(r.total, 2.5);
}

TEST_F(RewardTest, FormatCheck) {
  EXPECT_TRUE(IsWellFormed("reason</think>\\boxed{1}"));
  EXPECT_TRUE(IsWellFormed("<think>\nreason\n</think>\n\n\\boxed{1}"));  // explicit leading <think>
  EXPECT_TRUE(IsWellFormed("  <think>reason</think>answer: \\boxed{x}"));
  EXPECT_FALSE(IsWellFormed(""));
  EXPECT_FALSE(IsWellFormed("reason \\boxed{1}"));                         // no </think>
  EXPECT_FALSE(IsWellFormed("</think>\\boxed{1}"));                         // empty reasoning
  EXPECT_FALSE(IsWellFormed("<think> \n </think>\\boxed{1}"));              // blank reasoning
  EXPECT_FALSE(IsWellFormed("a</think>b</think>\\boxed{1}"));               // two </think>
  EXPECT_FALSE(IsWellFormed("a</think><think>b\\boxed{1}"));                // <think> after it
  EXPECT_FALSE(IsWellFormed("a<think>b</think>\\boxed{1}"));                // <think> inside
  EXPECT_FALSE(IsWellFormed("<think><think>a</think>\\boxed{1}"));
  EXPECT_FALSE(IsWellFormed("reason</think>the answer is 1"));              // no box
  EXPECT_FALSE(IsWellFormed("reason</think>\\boxed{ }"));                   // empty box
  EXPECT_FALSE(IsWellFormed("reason</think>\\boxed{1"));                    // unclosed box
  EXPECT_FALSE(IsWellFormed("reason \\boxed{1}</think>done"));              // box only in the reasoning
}

TEST(OverlongTest, LinearRamp) {
  RewardConfig cfg;
  cfg.max_tokens = 100;
  cfg.overlong_buffer = 20;
  cfg.overlong_penalty = 0.5;
  EXPECT_DOUBLE_EQ(OverlongPenalty(0, cfg), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(80, cfg), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(81, cfg), -0.5 * 1 / 20);
  EXPECT_DOUBLE_EQ(OverlongPenalty(90, cfg), -0.25);
  EXPECT_DOUBLE_EQ(OverlongPenalty(100, cfg), -0.5);
  EXPECT_DOUBLE_EQ(OverlongPenalty(150, cfg), -0.5);
  for (int64_t t = 81; t <= 100; ++t)  // equal steps all the way
    EXPECT_NEAR(OverlongPenalty(t, cfg) - OverlongPenalty(t - 1, cfg), -0.025, 1e-12);
  cfg.overlong_buffer = 0;  // only beyond the cap
  EXPECT_DOUBLE_EQ(OverlongPenalty(100, cfg), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(101, cfg), -0.5);
  cfg.max_tokens = 0;  // shaping off
  cfg.overlong_buffer = 20;
  EXPECT_DOUBLE_EQ(OverlongPenalty(1000000, cfg), 0.0);
}

TEST_F(RewardTest, OverlongAddsToTotal) {
  RewardConfig cfg;
  cfg.max_tokens = 256;
  cfg.overlong_buffer = 64;
  const Reward r = R("x</think>\\boxed{132}", 256 - 16, cfg);
  EXPECT_DOUBLE_EQ(r.overlong, -0.75);
  EXPECT_DOUBLE_EQ(r.total, 1.1 - 0.75);
}

TEST(ParseRewardConfigTest, KeyValue) {
  Result<RewardConfig> c = ParseRewardConfig("accuracy=1,format=0.1,max_tokens=256,overlong_buffer=64,overlong_penalty=0.5");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_DOUBLE_EQ(c->accuracy_weight, 1.0);
  EXPECT_DOUBLE_EQ(c->format_weight, 0.1);
  EXPECT_EQ(c->max_tokens, 256);
  EXPECT_EQ(c->overlong_buffer, 64);
  EXPECT_DOUBLE_EQ(c->overlong_penalty, 0.5);
  c = ParseRewardConfig(" format = 1 , ");
  ASSERT_TRUE(c.ok());
  EXPECT_DOUBLE_EQ(c->format_weight, 1.0);
  EXPECT_DOUBLE_EQ(c->accuracy_weight, 1.0);
  c = ParseRewardConfig("");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->max_tokens, 0);
  EXPECT_TRUE(ParseRewardConfig("format=-0.5").ok());  // a penalty for bad format is allowed
}

TEST(ParseRewardConfigTest, ErrorsNameTheKey) {
  auto error = [](const std::string& spec) {
    Result<RewardConfig> c = ParseRewardConfig(spec);
    EXPECT_FALSE(c.ok()) << spec;
    return c.ok() ? std::string() : c.status().message();
  };
  EXPECT_NE(error("accuracy=abc").find("accuracy: expected a number, got 'abc'"), std::string::npos);
  EXPECT_NE(error("format=").find("format:"), std::string::npos);
  EXPECT_NE(error("format=nan").find("format:"), std::string::npos);
  EXPECT_NE(error("max_tokens=1.5").find("max_tokens: expected a non-negative integer"), std::string::npos);
  EXPECT_NE(error("max_tokens=-1").find("max_tokens"), std::string::npos);
  EXPECT_NE(error("overlong_buffer=x").find("overlong_buffer"), std::string::npos);
  EXPECT_NE(error("overlong_penalty=-1").find("overlong_penalty: expected a non-negative number"), std::string::npos);
  EXPECT_NE(error("max_tokens=10,overlong_buffer=20").find("overlong_buffer: expected at most max_tokens"),
            std::string::npos);
  EXPECT_NE(error("temperature=1").find("unknown key 'temperature'"), std::string::npos);
  EXPECT_NE(error("accuracy=1,format").find("expected key=value"), std::string::npos);
  EXPECT_FALSE(ParseRewardConfig("/nonexistent/reward.json").ok());
}

TEST(ParseRewardConfigTest, JsonFile) {
  const std::string path = ::testing::TempDir() + "/rl_reward_" + std::to_string(::getpid()) + ".json";
  {
    std::ofstream f(path);
    f << R"({"accuracy": 1, "format": 0.2, "max_tokens": 200, "overlong_buffer": 50, "overlong_penalty": 1})";
  }
  Result<RewardConfig> c = ParseRewardConfig(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_DOUBLE_EQ(c->format_weight, 0.2);
  EXPECT_EQ(c->overlong_buffer, 50);
  {
    std::ofstream f(path);
    f << R"({"format": "lots"})";
  }
  c = ParseRewardConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("format: expected a number"), std::string::npos);
  EXPECT_NE(c.status().message().find(path), std::string::npos);
  {
    std::ofstream f(path);
    f << R"({"max_tokens": 1.5})";
  }
  EXPECT_FALSE(ParseRewardConfig(path).ok());
  {
    std::ofstream f(path);
    f << "[1, 2]";
  }
  EXPECT_FALSE(ParseRewardConfig(path).ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace r1::rl
