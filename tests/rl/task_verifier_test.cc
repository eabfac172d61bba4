// Task-specific verifier cases: adversarial answers for each family, and JSONL user tasks.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include <unistd.h>

#include "rl/task.h"

namespace r1::rl {
namespace {

std::unique_ptr<Task> Make(const std::string& name, const std::string& args = "") {
  Result<std::unique_ptr<Task>> t = MakeTask(name, args);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

Problem Countdown(std::vector<int64_t> numbers, int64_t target) {
  Problem p;
  p.task = "countdown";
  p.answer = "";
  p.data = {{"numbers", numbers}, {"target", target}, {"steps", nlohmann::json::array()}};
  return p;
}

TEST(CountdownVerifierTest, AcceptsAnyCorrectExpression) {
  auto task = Make("countdown");
  const Problem p = Countdown({3, 7, 25}, 46);
  for (const char* ok : {"7*3+25", "25+7*3", "(7*3)+25", " 25 + 3 x 7 ", "25+7\u00d73", "3*7+25 = 46", "3*7+25=46"})
    EXPECT_TRUE(task->Verify(p, ok)) << ok;
  // Exact rational intermediates: 8/(3-8/3) = 24 uses 8 twice, so give it twice.
  EXPECT_TRUE(task->Verify(Countdown({8, 8, 3, 3}, 24), "8/(3-8/3)"));
  EXPECT_TRUE(task->Verify(Countdown({7, 3, 3}, 7), "7/3*3"));
  // Not all numbers are needed.
  EXPECT_TRUE(task->Verify(Countdown({3, 7, 25, 40}, 65), "25+40"));
}

TEST(CountdownVerifierTest, Rejects) {
  auto task = Make("countdown");
  const Problem p = Countdown({3, 7, 25}, 46);
  for (const char* bad : {
           "7*3+25 = 45",           // claims another target
           "7*3+24",                // wrong value (and 24 not given)
           "7*7-3",                 // reused number (46 = 49-3)
           "25+21",                 // 21 is not given
           "46",                    // the target itself is not a given number
           "7*3+25+0",              // 0 is not given
           "(7*3+25",               // unbalanced
           "7*3+25)",               // unbalanced
           "7*3++25",               // malformed
           "-7*-3+25",              // unary minus
           "25/(7-7)+46",           // division by zero (and reuse)
           "7*3+25 = 46 = 46",      // two '='
           "\\boxed{7*3+25}",       // not extracted
           "7*3+25.0",              // decimals
           "7\xc3\x97" "3+25\xe2",  // truncated UTF-8
       })
    EXPECT_FALSE(task->Verify(p, bad)) << bad;
  // Used fewer times than given: 7 twice is fine only when 7 is given twice.
  EXPECT_TRUE(task->Verify(Countdown({7, 7, 3}, 46), "7*7-3"));
}

TEST(CountdownVerifierTest, HugeAndDeepInputsDoNotCrashOrHang) {
  auto task = Make("countdown");
  const Problem p = Countdown({3, 7, 25}, 46);
  EXPECT_FALSE(task->Verify(p, std::string(1 << 22, '(')));
  EXPECT_FALSE(task->Verify(p, std::string(1 << 22, '7')));
  EXPECT_FALSE(task->Verify(p, std::string(100, '(') + "7*3+25" + std::string(100, ')')));
  EXPECT_FALSE(task->Verify(p, "99999999999999999999999*0+46"));
  std::string chain = "25";
  for (int i = 0; i < 100000; ++i) chain += "*25";
  EXPECT_FALSE(task->Verify(p, chain));
}

TEST(ArithmeticVerifierTest, Cases) {
  auto task = Make("arithmetic");
  Problem p = task->Generate(Split::kTrain, 0);
  p.data = {{"a", 47}, {"b", 85}, {"op", "+"}, {"result", 132}};
  p.answer = "132";
  for (const char* ok : {"132", " 132 ", "+132", "132.0", "47 + 85 = 132", "264/2"}) EXPECT_TRUE(task->Verify(p, ok)) << ok;
  for (const char* bad : {"131", "133", "1 32", "132 apples", "one hundred thirty-two", "\xef\xbc\x91\xef\xbc\x93\xef\xbc\x92",
                          "132 = 47 + 85", "", "=", "1e2", "99999999999999999999999999999"})
    EXPECT_FALSE(task->Verify(p, bad)) << bad;
  p.data = {{"a", 31}, {"b", 687}, {"op", "-"}, {"result", -656}};
  EXPECT_TRUE(task->Verify(p, "-656"));
  EXPECT_FALSE(task->Verify(p, "656"));
  p.data = {{"a", 1234}, {"b", 1000}, {"op", "*"}, {"result", 1234000}};
  EXPECT_TRUE(task->Verify(p, "1,234,000"));
  EXPECT_FALSE(task->Verify(p, "1,2340,00"));
}

TEST(LinearVerifierTest, Cases) {
  auto task = Make("linear");
  Problem p = task->Generate(Split::kTrain, 0);
  p.data = {{"a", 3}, {"b", 7}, {"c", 22}, {"x", 5}};
  for (const char* ok : {"5", "x = 5", "x=5", "X = 5", " 5.0 "}) EXPECT_TRUE(task->Verify(p, ok)) << ok;
  for (const char* bad : {"-5", "x", "x =", "x 5", "y = 5", "x = 5 = 5", "5x", "x == 5", ""})
    EXPECT_FALSE(task->Verify(p, bad)) << bad;
}

TEST(SortVerifierTest, Cases) {
  auto task = Make("sort");
  Problem p = task->Generate(Split::kTrain, 0);
  p.data = {{"numbers", {42, 7, 19, 7}}};
  for (const char* ok : {"7, 7, 19, 42", "7,7,19,42", "7 7 19 42", "[7, 7, 19, 42]", "(7,7,19,42)"})
    EXPECT_TRUE(task->Verify(p, ok)) << ok;
  for (const char* bad : {"7, 19, 42", "7, 7, 19, 42, 42", "42, 19, 7, 7", "7, 7, 19, 42.", "7; 7; 19; 42", "[7, 7, 19, 42",
                          "7, 7, 19, 4 2", "7, 7, 19, -42", "", "[]"})
    EXPECT_FALSE(task->Verify(p, bad)) << bad;
}

class JsonlTaskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/rl_jsonl_task_" + std::to_string(::getpid()) + ".jsonl";
    std::ofstream f(path_);
    f << R"({"prompt": "What is 3/4 as a fraction?", "answer": "3/4"})" << "\n";
    f << R"({"prompt": "Capital of France?", "answer": "Paris"})" << "\n";
    f << "\n";  // blank lines are skipped
    f << R"({"prompt": "Half of 5?", "answer": 2.5, "solution": "5 / 2 = 2.5"})" << "\n";
    for (int i = 0; i < 17; ++i) f << R"({"prompt": "Count )" << i << R"(", "answer": )" << 1000 * i << "}\n";
  }
  void TearDown() override { std::remove(path_.c_str()); }
  std::string path_;
};

TEST_F(JsonlTaskTest, SplitsEveryKthLine) {
  auto task = Make("jsonl:" + path_, "heldout=0.25");
  std::set<std::string> train, held;
  for (uint64_t i = 0; i < 100; ++i) {
    train.insert(task->Generate(Split::kTrain, i).prompt);
    held.insert(task->Generate(Split::kHeldOut, i).prompt);
  }
  EXPECT_EQ(held.size(), 5u);  // 20 problems, every 4th
  EXPECT_EQ(train.size(), 15u);
  for (const std::string& h : held) EXPECT_EQ(train.count(h), 0u);
  EXPECT_EQ(task->Generate(Split::kHeldOut, 0).prompt, "Count 0");  // the 4th problem
  EXPECT_EQ(task->Generate(Split::kTrain, 0).prompt, "What is 3/4 as a fraction?");
  EXPECT_EQ(task->Generate(Split::kTrain, 15).prompt, task->Generate(Split::kTrain, 0).prompt);  // wraps
}

TEST_F(JsonlTaskTest, NumericAndStringMatching) {
  auto task = Make("jsonl:" + path_, "heldout=0.25");
  const Problem frac = task->Generate(Split::kTrain, 0);
  for (const char* ok : {"3/4", "6/8", "0.75", " .75 ", "3 / 4", "3/4 "}) EXPECT_TRUE(task->Verify(frac, ok)) << ok;
  for (const char* bad : {"0.7500001", "4/3", "three quarters", "3/4/1"}) EXPECT_FALSE(task->Verify(frac, bad)) << bad;
  const Problem paris = task->Generate(Split::kTrain, 1);
  EXPECT_TRUE(task->Verify(paris, "Paris"));
  EXPECT_TRUE(task->Verify(paris, "  Paris\n"));
  EXPECT_FALSE(task->Verify(paris, "paris"));
  EXPECT_FALSE(task->Verify(paris, "Paris."));
  const Problem half = task->Generate(Split::kTrain, 2);
  EXPECT_EQ(half.answer, "2.5");
  EXPECT_TRUE(task->Verify(half, "5/2"));
  EXPECT_NE(task->Solution(half, 0).find("5 / 2 = 2.5"), std::string::npos);
  const Problem big = task->Generate(Split::kTrain, 4);  // "Count 2" -> 2000
  EXPECT_EQ(big.answer, "2000");
  EXPECT_TRUE(task->Verify(big, "2,000"));
  EXPECT_TRUE(task->Verify(big, "2000.00"));
  EXPECT_FALSE(task->Verify(big, "20,00"));
  EXPECT_FALSE(task->Verify(big, "\xd9\xa2\xd9\xa0\xd9\xa0\xd9\xa0"));  // Arabic-Indic 2000
}

TEST(JsonlTaskErrorsTest, NameTheLineAndField) {
  const std::string path = ::testing::TempDir() + "/rl_jsonl_bad_" + std::to_string(::getpid()) + ".jsonl";
  auto check = [&](const std::string& content, const std::string& needle) {
    {
      std::ofstream f(path);
      f << content;
    }
    Result<std::unique_ptr<Task>> t = MakeTask("jsonl:" + path, "");
    ASSERT_FALSE(t.ok());
    EXPECT_NE(t.status().message().find(needle), std::string::npos) << t.status().message();
  };
  check("{\"prompt\": \"a\", \"answer\": \"b\"}\nnot json\n", ":2: expected a JSON object");
  check("{\"answer\": \"b\"}\n", ":1: \"prompt\": expected a string");
  check("{\"prompt\": \"a\"}\n", ":1: \"answer\": missing");
  check("{\"prompt\": \"a\", \"answer\": [1]}\n", "expected a string or a number");
  check("{\"prompt\": \"a\", \"answer\": \" \"}\n", "\"answer\": empty");
  check("{\"prompt\": \"a\", \"answer\": \"b\"}\n", "too few");
  std::remove(path.c_str());
  EXPECT_EQ(MakeTask("jsonl:/nonexistent/x.jsonl", "").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace r1::rl
