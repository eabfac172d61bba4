// r1 pretrain / sft end to end: learning on a learnable stream, a kill at an arbitrary instant
// leaving the previous checkpoint whole, --resume continuing bit-identically, JSONL text and chat
// data through a trained tokenizer, and the stop after repeated non-finite steps.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/command.h"
#include "core/file.h"
#include "core/rng.h"

extern char** environ;

namespace r1 {
namespace {

using test_util::CmdResult;
const auto R1 = test_util::RunR1;

namespace fs = std::filesystem;
using json = nlohmann::json;

// step -> loss, from a metrics file.
std::map<int64_t, double> Losses(const std::string& path) {
  std::map<int64_t, double> out;
  std::istringstream in(ReadFileToString(path).value());
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line);
    EXPECT_TRUE(j.contains("lr") && j.contains("grad_norm") && j.contains("step") && j.contains("loss")) << line;
    out[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

class TrainCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test_util::UniqueTempPath(std::string("r1_train_cli_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_EQ(R1("new-model --preset tiny --dtype f32 --out " + dir_ + "/base").code, 0);
    // A learnable stream: groups (a, 3a, 7a, EOS).
    Rng rng(3);
    std::string ids;
    for (int i = 0; i < 3000; ++i) {
      const int a = 2 + static_cast<int>(rng.Below(48));
      ids += std::to_string(a) + " " + std::to_string((a * 3) % 250 + 2) + " " + std::to_string((a * 7) % 250 + 2) + " 1 ";
    }
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/data.ids", ids).ok());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Common(int steps, const std::string& lr = "3e-3") {
    return "--config " + dir_ + "/base/config.json --data " + dir_ + "/data.ids --steps " + std::to_string(steps) +
           " --batch 2 --seq 32 --lr " + lr + " --seed 5 --threads 1";
  }
  std::string dir_;
};

TEST_F(TrainCliTest, LearnsAndWritesAnHfCheckpoint) {
  CmdResult r = R1("pretrain " + Common(60) + " --out " + dir_ + "/out --metrics " + dir_ + "/m.jsonl --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto losses = Losses(dir_ + "/m.jsonl");
  ASSERT_EQ(losses.size(), 60u);
  EXPECT_LT(losses.at(60), 0.7 * losses.at(1)) << "loss did not fall";
  EXPECT_NE(r.err.find("ETA"), std::string::npos);
  EXPECT_EQ(json::parse(r.out)["steps"], 60);
  // The checkpoint is a model the inference commands load.
  r = R1("info " + dir_ + "/out --json");
  ASSERT_EQ(r.code, 0) << r.err;
  r = R1("perplexity " + dir_ + "/out --ids " + dir_ + "/data.ids --json");
  ASSERT_EQ(r.code, 1);  // 12000 tokens exceed the context of 512: a clear error
  EXPECT_NE(r.err.find("exceed the context"), std::string::npos) << r.err;
}

TEST_F(TrainCliTest, KillAnywhereThenResumeIsBitIdentical) {
  // The uninterrupted reference run.
  ASSERT_EQ(R1("pretrain " + Common(120) + " --out " + dir_ + "/full --metrics " + dir_ + "/full.jsonl").code, 0);
  const auto full = Losses(dir_ + "/full.jsonl");
  // The same run, killed with SIGKILL once it has saved a few checkpoints.
  const std::string out = dir_ + "/killed";
  std::vector<std::string> args = {R1_BINARY, "pretrain", "--config", dir_ + "/base/config.json", "--data",
                                   dir_ + "/data.ids", "--steps", "120", "--batch", "2", "--seq", "32", "--lr", "3e-3",
                                   "--seed", "5", "--threads", "1", "--out", out, "--save-every", "7", "--metrics",
                                   dir_ + "/killed.jsonl"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, R1_BINARY, &fa, nullptr, argv.data(), environ), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool killed = false;
  while (std::chrono::steady_clock::now() < deadline) {
    auto st = ReadFileToString(out + "/trainer_state.json");
    if (st.ok()) {
      const json j = json::parse(st.value(), nullptr, false);
      if (!j.is_discarded() && j["step"].get<int64_t>() >= 21) {
        ::kill(pid, SIGKILL);
        killed = true;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  posix_spawn_file_actions_destroy(&fa);
  ASSERT_TRUE(killed) << "the run finished or stalled before it could be killed";
  // Whatever instant the kill hit, the checkpoint is whole and loads.
  const json state = json::parse(ReadFileToString(out + "/trainer_state.json").value());
  const int64_t saved = state["step"].get<int64_t>();
  EXPECT_EQ(saved % 7, 0);
  ASSERT_EQ(R1("info " + out).code, 0);
  CmdResult r = R1("pretrain " + Common(120) + " --out " + out + " --resume " + out + " --save-every 7 --metrics " +
                   dir_ + "/resumed.jsonl");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto resumed = Losses(dir_ + "/resumed.jsonl");
  ASSERT_EQ(resumed.size(), static_cast<size_t>(120 - saved));
  for (const auto& [step, loss] : resumed) EXPECT_EQ(loss, full.at(step)) << "step " << step;
  // And the final weights are the same bytes.
  EXPECT_EQ(ReadFileToString(out + "/model.safetensors").value(), ReadFileToString(dir_ + "/full/model.safetensors").value());
  // No temporary directories are left behind.
  for (const auto& e : fs::directory_iterator(dir_)) EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST_F(TrainCliTest, TextAndChatJsonlThroughATrainedTokenizer) {
  std::string corpus, text_jsonl, chats;
  for (int i = 0; i < 60; ++i) {
    const std::string q = "What is " + std::to_string(i) + " plus " + std::to_string(i + 1) + "?";
    const std::string a = std::to_string(2 * i + 1);
    corpus += q + " The answer is " + a + ".\n";
    text_jsonl += json({{"text", q + " The answer is " + a + "."}}).dump() + "\n";
    chats += json({{"messages", {{{"role", "user"}, {"content", q}},
                                 {{"role", "assistant"}, {"content", "<think>\nadd them\n</think>\n\n" + a}}}}})
                 .dump() +
             "\n";
  }
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/corpus.txt", corpus).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/text.jsonl", text_jsonl).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/chats.jsonl", chats).ok());
  ASSERT_EQ(R1("tokenizer train --corpus " + dir_ + "/corpus.txt --vocab-size 300 --out " + dir_ + "/tok").code, 0);
  json cfg = json::parse(ReadFileToString(dir_ + "/base/config.json").value());
  cfg["vocab_size"] = 300;
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/config300.json", cfg.dump()).ok());
  CmdResult r = R1("pretrain --config " + dir_ + "/config300.json --tokenizer " + dir_ + "/tok --data " + dir_ +
                   "/text.jsonl --out " + dir_ + "/pt --steps 20 --batch 2 --seq 48 --lr 3e-3 --metrics " + dir_ +
                   "/pt.jsonl");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(FileExists(dir_ + "/pt/tokenizer.json"));  // the checkpoint carries its tokenizer
  r = R1("sft --init " + dir_ + "/pt --data " + dir_ + "/chats.jsonl --out " + dir_ + "/sft --steps 20 --batch 2 --seq 64 --lr 3e-3 --metrics " +
         dir_ + "/sft.jsonl");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto sft = Losses(dir_ + "/sft.jsonl");
  EXPECT_LT(sft.at(20), sft.at(1));
  const json st = json::parse(ReadFileToString(dir_ + "/sft/trainer_state.json").value());
  EXPECT_EQ(st["stage"], "sft");
  // The fine-tuned model answers through its tokenizer.
  r = R1("generate " + dir_ + "/sft --prompt 'What is 3 plus 4?' --max-new-tokens 5 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(json::parse(r.out).contains("text"));
  // A chat that does not end with the assistant turn is refused with its line number.
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/bad.jsonl", chats + "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n").ok());
  r = R1("sft --init " + dir_ + "/pt --data " + dir_ + "/bad.jsonl --out " + dir_ + "/x --steps 1 --batch 1 --seq 64 --lr 1e-3");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("bad.jsonl:61"), std::string::npos) << r.err;
}

TEST_F(TrainCliTest, RepeatedNonFiniteStepsStopTheRun) {
  CmdResult r = R1("pretrain " + Common(40, "1e30") + " --clip 0 --out " + dir_ + "/nan");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("step skipped"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("non-finite steps in a row"), std::string::npos) << r.err;
}

TEST_F(TrainCliTest, UsageErrors) {
  EXPECT_EQ(R1("pretrain --data x.ids --out y --steps 1 --batch 1 --seq 4 --lr 1e-3").code, 2);  // no model
  EXPECT_EQ(R1("sft --data x.jsonl --out y --steps 1 --batch 1 --seq 4 --lr 1e-3").code, 2);      // no --init
  EXPECT_EQ(R1("pretrain " + Common(1) + " --out y --seq 100000").code, 2);                      // seq > context
}

}  // namespace
}  // namespace r1
