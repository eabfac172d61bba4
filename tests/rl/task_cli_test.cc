// `r1 task` end to end: listing, JSON and SFT output, --verify, and exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/command.h"
#include "core/file.h"
#include "rl/task.h"

namespace r1 {
namespace {

using test_util::CmdResult;
const auto R1 = test_util::RunR1;

using json = nlohmann::json;

std::vector<json> Lines(const std::string& out) {
  std::vector<json> rows;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) rows.push_back(json::parse(line));
  return rows;
}

TEST(TaskCli, JsonMatchesTheLibrary) {
  CmdResult r = R1("task --task countdown --task-args numbers=3-4,max=50 --split heldout --n 4 --start 10 --solutions --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<json> rows = Lines(r.out);
  ASSERT_EQ(rows.size(), 4u);
  std::unique_ptr<rl::Task> t = std::move(rl::MakeTask("countdown", "numbers=3-4,max=50")).value();
  for (size_t i = 0; i < rows.size(); ++i) {
    const rl::Problem p = t->Generate(rl::Split::kHeldOut, 10 + i);
    EXPECT_EQ(rows[i]["prompt"], p.prompt);
    EXPECT_EQ(rows[i]["answer"], p.answer);
    EXPECT_EQ(rows[i]["split"], "heldout");
    EXPECT_EQ(rows[i]["index"], 10 + i);
    EXPECT_EQ(rows[i]["solution"], t->Solution(p, 10 + i));
  }
}

TEST(TaskCli, SftChats) {
  CmdResult r = R1("task --task linear --n 3 --sft");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const json& row : Lines(r.out)) {
    ASSERT_EQ(row["messages"].size(), 2u);
    EXPECT_EQ(row["messages"][0]["role"], "user");
    EXPECT_EQ(row["messages"][1]["role"], "assistant");
    EXPECT_EQ(row["messages"][1]["content"].get<std::string>().rfind("<think>\n", 0), 0u);
  }
}

TEST(TaskCli, Verify) {
  std::unique_ptr<rl::Task> t = std::move(rl::MakeTask("arithmetic", "")).value();
  const rl::Problem p = t->Generate(rl::Split::kTrain, 3);
  CmdResult r = R1("task --task arithmetic --verify --index 3 --answer '" + p.answer + "' --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["correct"], true);
  r = R1("task --task arithmetic --verify --index 3 --answer 'x" + p.answer + "' --json");
  EXPECT_EQ(json::parse(r.out)["correct"], false);
  // A whole completion is scored too.
  r = R1("task --task arithmetic --verify --index 3 --json --reward format=0.5 --answer 'steps</think> \\boxed{" + p.answer + "}'");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["extracted"], p.answer);
  EXPECT_DOUBLE_EQ(j["reward"]["total"].get<double>(), 1.5);
}

TEST(TaskCli, UsageErrorsExit2) {
  for (const char* args : {"task", "task --task nope", "task --task arithmetic --task-args digits=0",
                           "task --task arithmetic --task-args bogus=1", "task --task arithmetic --split dev",
                           "task --task arithmetic --verify", "task --task arithmetic --answer 3",
                           "task --task arithmetic --sft --json", "task --task arithmetic --n -1"}) {
    CmdResult r = R1(args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_FALSE(r.err.empty()) << args;
  }
  CmdResult r = R1("task --task jsonl:/nonexistent.jsonl");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("/nonexistent.jsonl"), std::string::npos);
}

}  // namespace
}  // namespace r1
