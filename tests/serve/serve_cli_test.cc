// r1 serve and r1 chat as commands: a model without tokenizer.json is refused with a clear line;
// r1 chat runs a scripted conversation from stdin (/system, /reset, /exit) and streams answers.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/command.h"
#include "core/file.h"

namespace r1 {
namespace {

using test_util::CmdResult;
const auto Sh = test_util::RunShell;

const std::string kR1 = R1_BINARY;

class ServeCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    namespace fs = std::filesystem;
    dir_ = test_util::UniqueTempPath("r1_serve_cli");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::string corpus;
    for (int i = 0; i < 100; ++i) corpus += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/corpus.txt", corpus).ok());
    ASSERT_EQ(Sh(kR1 + " tokenizer train --corpus " + dir_ + "/corpus.txt --vocab-size 320 --out " + dir_ + "/model").code, 0);
    ASSERT_EQ(Sh(kR1 + " new-model --preset tiny --out " + dir_ + "/base").code, 0);
    auto cfg = nlohmann::json::parse(ReadFileToString(dir_ + "/base/config.json").value());
    cfg["vocab_size"] = 320;
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/config.json", cfg.dump()).ok());
    ASSERT_EQ(Sh(kR1 + " new-model --config " + dir_ + "/config.json --out " + dir_ + "/model").code, 0);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static std::string dir_;
};
std::string ServeCli::dir_;

TEST_F(ServeCli, RefusesModelWithoutTokenizer) {
  const CmdResult r = Sh(kR1 + " serve " + dir_ + "/base --port 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("tokenizer.json"), std::string::npos) << r.err;
  EXPECT_EQ(Sh(kR1 + " chat " + dir_ + "/base < /dev/null").code, 1);
}

TEST_F(ServeCli, BadOptionsAreUsageErrors) {
  EXPECT_EQ(Sh(kR1 + " serve " + dir_ + "/model --max-batch 0").code, 2);
  const CmdResult r = Sh(kR1 + " serve " + dir_ + "/model --port 0 --ctx 100000");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("max_position_embeddings"), std::string::npos) << r.err;
}

TEST_F(ServeCli, ChatScriptedConversation) {
  const std::string script = dir_ + "/script.txt";
  ASSERT_TRUE(WriteFileAtomic(script, "the quick\n/system be brief\nover the lazy dog\n/reset\nfox\n/exit\nnever read\n").ok());
  const CmdResult r = Sh(kR1 + " chat " + dir_ + "/model --max-tokens 8 --seed 3 --threads 1 < " + script);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("(system prompt set)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(conversation cleared)"), std::string::npos) << r.out;
  // Not a terminal: no ANSI dimming; same script, same seed, same transcript.
  EXPECT_EQ(r.out.find("\x1b["), std::string::npos);
  EXPECT_EQ(Sh(kR1 + " chat " + dir_ + "/model --max-tokens 8 --seed 3 --threads 1 < " + script).out, r.out);
  const CmdResult hidden = Sh(kR1 + " chat " + dir_ + "/model --max-tokens 8 --seed 3 --hide-think --threads 1 < " + script);
  ASSERT_EQ(hidden.code, 0);
  EXPECT_LE(hidden.out.size(), r.out.size());
}

}  // namespace
}  // namespace r1
