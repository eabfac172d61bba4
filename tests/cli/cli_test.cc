// The r1 binary end to end: exit codes, one-line errors, --json outputs against the reference.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/command.h"
#include "core/file.h"

namespace r1 {
namespace {

using test_util::CmdResult;
const auto R1 = test_util::RunR1;

using json = nlohmann::json;

const std::string kFixtures = std::string(R1_SOURCE_DIR) + "/tests/fixtures/";

TEST(Cli, PerplexityJsonMatchesReference) {
  for (const char* v : {"tiny-fp8", "tiny-bf16-direct-q"}) {
    const std::string d = kFixtures + v;
    CmdResult r = R1("perplexity " + d + " --ids " + d + "/ids.txt --json --threads 1");
    ASSERT_EQ(r.code, 0) << r.err;
    const json out = json::parse(r.out);
    const json expected = json::parse(ReadFileToString(d + "/expected.json").value());
    EXPECT_NEAR(out["nll"].get<double>(), expected["nll"].get<double>(), 1e-4 * expected["nll"].get<double>());
    EXPECT_EQ(out["tokens"].get<int>(), 23);
  }
}

TEST(Cli, GenerateGreedyJsonMatchesReference) {
  const std::string d = kFixtures + "tiny-f32-qlora";
  const json expected = json::parse(ReadFileToString(d + "/expected.json").value());
  std::string prompt;
  for (int i = 0; i < expected["prompt_len"].get<int>(); ++i) prompt += std::to_string(expected["ids"][i].get<int>()) + " ";
  const std::string path = test_util::UniqueTempPath("r1_cli_prompt.ids");
  ASSERT_TRUE(WriteFileAtomic(path, prompt).ok());
  CmdResult r = R1("generate " + d + " --ids " + path + " --max-new-tokens 12 --ignore-eos --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["ids"], expected["greedy"]);
}

TEST(Cli, InfoJson) {
  CmdResult r = R1("info " + kFixtures + "tiny-fp8 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["layout"], "DMM");
  EXPECT_EQ(j["kv_cache_values_per_token"], 3 * (32 + 8));
  EXPECT_GT(j["total_params"].get<int64_t>(), j["active_params"].get<int64_t>());
}

// r1 starts itself with OPENBLAS_CORETYPE set when the library took this CPU for an old core
// (Debian 12's OpenBLAS takes AVX-512 Xeons for SSE3 "Prescott"s); an explicit choice is kept.
TEST(Cli, BenchRunsOnAModernBlasCoreUnlessTold) {
  const std::string bench = "bench " + kFixtures + "tiny-fp8 --prompt 4 --decode 4 --reps 1 --json";
  CmdResult r = R1(bench);
  ASSERT_EQ(r.code, 0) << r.err;
  std::string core = json::parse(r.out)["blas_core"].get<std::string>();
  ASSERT_FALSE(core.empty());
  for (char& c : core) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    for (const char* old : {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "sandybridge", "unknown"})
      EXPECT_NE(core, old) << "r1 left OpenBLAS on a pre-AVX2 core on an AVX2 CPU";
  }
  r = test_util::RunShell("OPENBLAS_CORETYPE=PRESCOTT " + std::string(R1_BINARY) + " " + bench);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["blas_core"], "Prescott");
}

TEST(Cli, UsageErrorsExitTwoWithOneLine) {
  for (const std::string args : {"", "info", "perplexity x", "generate x --max-new-tokens 2", "info x --threads -1",
                                 "new-model --out /tmp/x --preset nope"}) {
    CmdResult r = R1(args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
  }
}

TEST(Cli, RuntimeErrorsExitOneNamingTheProblem) {
  CmdResult r = R1("info /definitely/not/here");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("/definitely/not/here"), std::string::npos) << r.err;
  const std::string bad = test_util::UniqueTempPath("r1_cli_bad.ids");
  ASSERT_TRUE(WriteFileAtomic(bad, std::string("1 2 banana")).ok());
  r = R1("perplexity " + kFixtures + "tiny-fp8 --ids " + bad);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("banana"), std::string::npos) << r.err;
  ASSERT_TRUE(WriteFileAtomic(bad, std::string("1 2 500")).ok());
  r = R1("perplexity " + kFixtures + "tiny-fp8 --ids " + bad);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("outside the vocabulary"), std::string::npos) << r.err;
  // Prompt + new tokens past the context (64 positions).
  ASSERT_TRUE(WriteFileAtomic(bad, std::string("1 2 3")).ok());
  r = R1("generate " + kFixtures + "tiny-fp8 --ids " + bad + " --max-new-tokens 100");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("exceeds the context"), std::string::npos) << r.err;
}

TEST(Cli, NewModelThenGenerate) {
  const std::string d = test_util::UniqueTempPath("r1_cli_newmodel");
  std::filesystem::remove_all(d);
  for (const char* dtype : {"f32", "bf16", "fp8"}) {
    CmdResult r = R1(std::string("new-model --preset tiny --dtype ") + dtype + " --out " + d + " --seed 3");
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string ids = test_util::UniqueTempPath("r1_cli_p.ids");
    ASSERT_TRUE(WriteFileAtomic(ids, std::string("5 6 7")).ok());
    r = R1("generate " + d + " --ids " + ids + " --max-new-tokens 8 --temperature 0.7 --seed 1 --ignore-eos --json");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["ids"].size(), 8u);
    // The same seed gives the same sample.
    CmdResult again = R1("generate " + d + " --ids " + ids + " --max-new-tokens 8 --temperature 0.7 --seed 1 --ignore-eos --json");
    EXPECT_EQ(again.out, r.out);
  }
  std::filesystem::remove_all(d);
}

TEST(Cli, GeneratePromptTextWithTokenizer) {
  namespace fs = std::filesystem;
  const std::string d = test_util::UniqueTempPath("r1_cli_tokmodel");
  fs::remove_all(d);
  fs::create_directories(d);
  std::string corpus;
  for (int i = 0; i < 200; ++i) corpus += "the quick brown fox jumps over the lazy dog " + std::to_string(i * 37) + "\n";
  ASSERT_TRUE(WriteFileAtomic(d + "/corpus.txt", corpus).ok());
  CmdResult r = R1("tokenizer train --corpus " + d + "/corpus.txt --vocab-size 320 --out " + d + "/model");
  ASSERT_EQ(r.code, 0) << r.err;
  // A tiny model whose vocabulary covers the tokenizer's.
  r = R1("new-model --preset tiny --out " + d + "/base");
  ASSERT_EQ(r.code, 0) << r.err;
  json cfg = json::parse(ReadFileToString(d + "/base/config.json").value());
  cfg["vocab_size"] = 320;
  ASSERT_TRUE(WriteFileAtomic(d + "/config.json", cfg.dump()).ok());
  r = R1("new-model --config " + d + "/config.json --out " + d + "/model --seed 5");
  ASSERT_EQ(r.code, 0) << r.err;
  r = R1("generate " + d + "/model --prompt 'the quick brown' --max-new-tokens 6 --ignore-eos --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json out = json::parse(r.out);
  EXPECT_EQ(out["ids"].size(), 6u);
  ASSERT_TRUE(out.contains("text"));
  EXPECT_TRUE(out["text"].is_string());
  // Without a tokenizer, --prompt is a clear error.
  r = R1("generate " + d + "/base --prompt hi --max-new-tokens 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("tokenizer.json"), std::string::npos) << r.err;
  fs::remove_all(d);
}

}  // namespace
}  // namespace r1
