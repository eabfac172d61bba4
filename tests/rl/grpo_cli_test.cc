// r1 grpo and r1 eval end to end on a tiny model: metrics per step, the checkpoint, the eval JSON.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/command.h"
#include "core/file.h"

namespace r1 {
namespace {

using test_util::CmdResult;
const auto R1 = test_util::RunR1;

namespace fs = std::filesystem;
using json = nlohmann::json;

TEST(GrpoCli, StepsMetricsCheckpointAndEval) {
  const std::string d = test_util::UniqueTempPath("r1_grpo_cli");
  fs::remove_all(d);
  fs::create_directories(d);
  const std::string task = "--task arithmetic --task-args digits=1,ops=+";
  CmdResult r = R1("task " + task + " --n 200 --solutions --json");
  ASSERT_EQ(r.code, 0) << r.err;
  std::string corpus, docs;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line);
    const std::string text = j["prompt"].get<std::string>() + "\n" + j["solution"].get<std::string>();
    corpus += text + "\n";
    docs += json({{"text", text}}).dump() + "\n";
  }
  ASSERT_TRUE(WriteFileAtomic(d + "/corpus.txt", corpus).ok());
  ASSERT_TRUE(WriteFileAtomic(d + "/docs.jsonl", docs).ok());
  ASSERT_EQ(R1("tokenizer train --corpus " + d + "/corpus.txt --vocab-size 300 --digits single --out " + d + "/tok").code, 0);
  ASSERT_EQ(R1("new-model --preset tiny --out " + d + "/t0").code, 0);
  json cfg = json::parse(ReadFileToString(d + "/t0/config.json").value());
  cfg["vocab_size"] = 300;
  ASSERT_TRUE(WriteFileAtomic(d + "/cfg.json", cfg.dump()).ok());
  r = R1("pretrain --config " + d + "/cfg.json --tokenizer " + d + "/tok --data " + d + "/docs.jsonl --out " + d +
         "/base --steps 3 --batch 2 --seq 64 --lr 1e-3");
  ASSERT_EQ(r.code, 0) << r.err;

  r = R1("grpo --init " + d + "/base " + task + " --out " + d + "/g --steps 2 --prompts-per-step 2 --group 4 " +
         "--max-new-tokens 16 --lr 1e-3 --beta 0.04 --epsilon-high 0.28 --metrics " + d + "/m.jsonl --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("grpo step 2/2"), std::string::npos) << r.err;
  std::istringstream m(ReadFileToString(d + "/m.jsonl").value());
  int steps = 0;
  while (std::getline(m, line)) {
    const json j = json::parse(line);
    for (const char* k : {"reward_mean", "reward_std", "accuracy", "format_rate", "completion_length_mean",
                          "completion_length_max", "kl", "clip_fraction", "entropy", "zero_std_groups",
                          "rollout_tokens_per_s", "update_tokens_per_s", "rollout_seconds", "update_seconds"})
      EXPECT_TRUE(j.contains(k)) << k;
    EXPECT_GE(j["kl"].get<double>(), 0.0);
    EXPECT_LE(j["completion_length_max"].get<int>(), 16);
    ++steps;
  }
  EXPECT_EQ(steps, 2);
  EXPECT_EQ(json::parse(ReadFileToString(d + "/g/trainer_state.json").value())["stage"], "grpo");
  EXPECT_TRUE(FileExists(d + "/g/tokenizer.json"));

  // The other loss aggregations, μ > 1 and dynamic sampling run too.
  r = R1("grpo --init " + d + "/base " + task + " --out " + d + "/g2 --steps 1 --prompts-per-step 2 --group 3 " +
         "--max-new-tokens 8 --lr 1e-3 --loss dr-grpo --mu 2 --dynamic-sampling");
  ASSERT_EQ(r.code, 0) << r.err;
  r = R1("grpo --init " + d + "/base " + task + " --out " + d + "/g3 --steps 1 --prompts-per-step 1 --group 2 " +
         "--max-new-tokens 8 --lr 1e-3 --loss seq-mean-token-mean");
  ASSERT_EQ(r.code, 0) << r.err;
  // Two threads, each taking whole micro-batches into its own gradients on a model this small: two
  // runs give the same checkpoint bit for bit.
  for (const char* out : {"/t2a", "/t2b"}) {
    r = R1("grpo --init " + d + "/base " + task + " --out " + d + out + " --steps 2 --prompts-per-step 2 --group 4 " +
           "--max-new-tokens 8 --lr 1e-3 --micro-batch 2 --threads 2");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  EXPECT_EQ(ReadFileToString(d + "/t2a/model.safetensors").value(), ReadFileToString(d + "/t2b/model.safetensors").value());
  // Mixed precision: the update's products in bf16 and rollouts sampled from a packed bf16 copy of
  // the policy, repacked after each step's updates. Deterministic too, and not the f32 run.
  for (const char* out : {"/b2a", "/b2b"}) {
    r = R1("grpo --init " + d + "/base " + task + " --out " + d + out + " --steps 2 --prompts-per-step 2 --group 4 " +
           "--max-new-tokens 8 --lr 1e-3 --micro-batch 2 --threads 2 --precision bf16");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  const std::string b2a = ReadFileToString(d + "/b2a/model.safetensors").value();
  EXPECT_EQ(b2a, ReadFileToString(d + "/b2b/model.safetensors").value());
  EXPECT_NE(b2a, ReadFileToString(d + "/t2a/model.safetensors").value());
  EXPECT_EQ(json::parse(ReadFileToString(d + "/b2a/trainer_state.json").value())["precision"], "bf16");
  // The update's forward from the rollout's recorded feed-forward activations (the default) or
  // recomputed whole: the same rollout, and the same update up to the products' summation order
  // (the entropy is computed from the forward's every logit).
  std::vector<json> first_steps;
  for (const char* flag : {"", " --no-rollout-tape"}) {
    const std::string out = d + (*flag ? "/nt" : "/tp");
    r = R1("grpo --init " + d + "/base " + task + " --out " + out + " --steps 1 --prompts-per-step 2 --group 4 " +
           "--max-new-tokens 8 --lr 1e-3 --threads 2 --metrics " + out + ".jsonl" + flag);
    ASSERT_EQ(r.code, 0) << r.err;
    first_steps.push_back(json::parse(ReadFileToString(out + ".jsonl").value()));
  }
  EXPECT_EQ(first_steps[0]["completion_length_mean"], first_steps[1]["completion_length_mean"]);
  const double entropy = first_steps[1]["entropy"].get<double>();
  EXPECT_NEAR(first_steps[0]["entropy"].get<double>(), entropy, 1e-5 * entropy);
  EXPECT_EQ(R1("grpo --init " + d + "/base " + task + " --out " + d + "/x --steps 1 --lr 1e-3 --loss bogus").code, 2);
  EXPECT_EQ(R1("grpo --init " + d + "/base --task nosuch --out " + d + "/x --steps 1 --lr 1e-3").code, 1);

  r = R1("eval " + d + "/g " + task + " --n 4 --samples 3 --max-new-tokens 16 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json e = json::parse(r.out);
  for (const char* k : {"pass1", "majority", "format_rate"}) {
    EXPECT_GE(e[k].get<double>(), 0.0) << k;
    EXPECT_LE(e[k].get<double>(), 1.0) << k;
  }
  EXPECT_GT(e["mean_length"].get<double>(), 0.0);
  fs::remove_all(d);
}

}  // namespace
}  // namespace r1
