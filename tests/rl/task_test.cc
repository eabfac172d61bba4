// Properties every task must have: determinism, disjoint splits, solutions that verify and are
// well formed, and wrong answers rejected.
#include "rl/task.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "rl/answer.h"
#include "rl/reward.h"

namespace r1::rl {
namespace {

std::unique_ptr<Task> Make(const std::string& name, const std::string& args = "") {
  Result<std::unique_ptr<Task>> t = MakeTask(name, args);
  EXPECT_TRUE(t.ok()) << name << " " << args << ": " << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

// The problem's identity as the split rule sees it (order of the given numbers does not matter).
std::string CanonicalKey(const Problem& p) {
  if (p.task == "countdown" || p.task == "sort") {
    std::vector<int64_t> numbers = p.data["numbers"];
    std::sort(numbers.begin(), numbers.end());
    return nlohmann::json(numbers).dump() + (p.task == "countdown" ? "->" + p.data["target"].dump() : "");
  }
  return p.prompt;
}

class EveryTaskTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryTaskTest, Deterministic) {
  auto a = Make(GetParam()), b = Make(GetParam());
  for (Split split : {Split::kTrain, Split::kHeldOut}) {
    for (uint64_t i : {0ull, 1ull, 17ull, 123456789ull}) {
      const Problem p = a->Generate(split, i), q = b->Generate(split, i);
      EXPECT_EQ(p.prompt, q.prompt);
      EXPECT_EQ(p.answer, q.answer);
      EXPECT_EQ(p.data, q.data);
      EXPECT_EQ(p.task, GetParam());
      EXPECT_EQ(a->Solution(p, i), b->Solution(q, i));
    }
  }
  // Different indices and seeds give different streams.
  EXPECT_NE(a->Generate(Split::kTrain, 0).prompt + a->Generate(Split::kTrain, 1).prompt,
            a->Generate(Split::kTrain, 1).prompt + a->Generate(Split::kTrain, 0).prompt);
  auto seeded = Make(GetParam(), "seed=7");
  int same = 0;
  for (uint64_t i = 0; i < 20; ++i) same += seeded->Generate(Split::kTrain, i).prompt == a->Generate(Split::kTrain, i).prompt;
  EXPECT_LT(same, 5);
}

TEST_P(EveryTaskTest, SplitsAreDisjoint) {
  auto task = Make(GetParam());
  auto seeded = Make(GetParam(), "seed=3");
  std::set<std::string> train, heldout;
  for (uint64_t i = 0; i < 8000; ++i) {
    train.insert(CanonicalKey(task->Generate(Split::kTrain, i)));
    train.insert(CanonicalKey(seeded->Generate(Split::kTrain, i)));  // another seed, same rule
  }
  for (uint64_t i = 0; i < 2000; ++i) {
    heldout.insert(CanonicalKey(task->Generate(Split::kHeldOut, i)));
    heldout.insert(CanonicalKey(seeded->Generate(Split::kHeldOut, i)));
  }
  for (const std::string& k : heldout) ASSERT_EQ(train.count(k), 0u) << k;
  EXPECT_GT(heldout.size(), 100u);
}

TEST_P(EveryTaskTest, SolutionsVerifyAndAreWellFormed) {
  auto task = Make(GetParam());
  for (Split split : {Split::kTrain, Split::kHeldOut}) {
    for (uint64_t i = 0; i < 1500; ++i) {
      const Problem p = task->Generate(split, i);
      EXPECT_TRUE(task->Verify(p, p.answer)) << p.prompt << " -> " << p.answer;
      const std::string s = task->Solution(p, i);
      ASSERT_EQ(s.rfind("<think>\n", 0), 0u) << s;
      ASSERT_NE(s.find("\n</think>\n\n"), std::string::npos) << s;
      const std::optional<std::string> answer = ExtractAnswer(s);
      ASSERT_TRUE(answer.has_value()) << s;
      EXPECT_EQ(*answer, p.answer);
      EXPECT_TRUE(task->Verify(p, *answer)) << s;
      // What the model generates comes after the prompt's "<think>\n".
      const Reward r = ComputeReward(*task, p, std::string_view(s).substr(8), 100, RewardConfig{});
      EXPECT_TRUE(r.correct && r.well_formed) << s;
      EXPECT_DOUBLE_EQ(r.total, 1.1);
    }
  }
}

TEST_P(EveryTaskTest, SolutionVariantsDiffer) {
  auto task = Make(GetParam());
  const Problem p = task->Generate(Split::kTrain, 5);
  std::set<std::string> texts;
  for (uint64_t v = 0; v < 3; ++v) texts.insert(task->Solution(p, v));
  EXPECT_EQ(texts.size(), 3u);
  EXPECT_EQ(task->Solution(p, 4), task->Solution(p, 4));
}

TEST_P(EveryTaskTest, RejectsWrongAndGarbageAnswers) {
  auto task = Make(GetParam());
  const std::string long_garbage(1 << 20, '9');
  for (uint64_t i = 0; i < 200; ++i) {
    const Problem p = task->Generate(Split::kTrain, i);
    for (const std::string& bad : {std::string(""), std::string(" "), std::string("}"), std::string("\\boxed{"),
                                   p.answer + "1", "1" + p.answer, p.answer + " " + p.answer, long_garbage,
                                   std::string("\xff\xfe\x00", 3), std::string("NaN"), std::string("((((((((")})
      EXPECT_FALSE(task->Verify(p, bad)) << p.prompt << " accepted '" << bad.substr(0, 40) << "'";
  }
}

TEST_P(EveryTaskTest, ProblemsOfOtherTasksAreNotVerifiedAndDoNotCrash) {
  auto task = Make(GetParam());
  Problem empty;
  EXPECT_FALSE(task->Verify(empty, "1"));
  Problem wrong_types;
  wrong_types.data = {{"result", "7"}, {"target", 3.5}, {"x", nullptr}, {"numbers", {"a", 1}}};
  EXPECT_FALSE(task->Verify(wrong_types, "7"));
  for (const std::string& other : TaskNames()) {
    if (other == GetParam()) continue;
    const Problem p = Make(other)->Generate(Split::kTrain, 0);
    task->Verify(p, p.answer);  // may be true by coincidence of field names; must not crash
  }
}

INSTANTIATE_TEST_SUITE_P(Tasks, EveryTaskTest, ::testing::Values("arithmetic", "countdown", "linear", "sort"));

TEST(MakeTaskTest, NamesAndArgs) {
  EXPECT_EQ(TaskNames(), (std::vector<std::string>{"arithmetic", "countdown", "linear", "sort"}));
  auto expect_error = [](const std::string& name, const std::string& args, const std::string& needle) {
    Result<std::unique_ptr<Task>> t = MakeTask(name, args);
    ASSERT_FALSE(t.ok()) << name << " " << args;
    EXPECT_NE(t.status().message().find(needle), std::string::npos) << t.status().message();
  };
  expect_error("algebra", "", "unknown task 'algebra'");
  expect_error("arithmetic", "digits=0-2", "digits");
  expect_error("arithmetic", "digits=3-2", "digits");
  expect_error("arithmetic", "digits=10", "digits");
  expect_error("arithmetic", "ops=+/", "ops");
  expect_error("arithmetic", "colour=red", "unknown key 'colour'");
  expect_error("arithmetic", "digits", "expected key=value");
  expect_error("arithmetic", "seed=1,seed=2", "seed given twice");
  expect_error("arithmetic", "heldout=0.9", "heldout");
  expect_error("countdown", "numbers=1-4", "numbers");
  expect_error("countdown", "max=x", "max");
  expect_error("countdown", "max=2,target=500-600", "too few");
  expect_error("linear", "a=0", "a:");
  expect_error("linear", "a=1,b=0,x=0", "too few");
  expect_error("sort", "n=1", "n:");
  expect_error("jsonl:", "", "path is empty");
  EXPECT_TRUE(MakeTask("arithmetic", " digits=1-2 , ops=+ ").ok());
  EXPECT_TRUE(MakeTask("countdown", "numbers=3-4,max=50").ok());
}

TEST(SplitTest, Names) {
  EXPECT_EQ(*ParseSplit("train"), Split::kTrain);
  EXPECT_EQ(*ParseSplit("heldout"), Split::kHeldOut);
  EXPECT_FALSE(ParseSplit("dev").ok());
  EXPECT_STREQ(SplitName(Split::kHeldOut), "heldout");
}

TEST(SplitTest, HeldOutShareIsAboutTheRequestedFraction) {
  // Count distinct held-out keys among a large sample of train+heldout-agnostic draws by asking
  // both splits for problems of a small space (2-digit addition: 8100 problems).
  auto task = Make("arithmetic", "digits=2,ops=+");
  std::set<std::string> train, heldout;
  for (uint64_t i = 0; i < 20000; ++i) train.insert(task->Generate(Split::kTrain, i).prompt);
  for (uint64_t i = 0; i < 6000; ++i) heldout.insert(task->Generate(Split::kHeldOut, i).prompt);
  const double share = static_cast<double>(heldout.size()) / static_cast<double>(train.size() + heldout.size());
  EXPECT_GT(share, 0.12);
  EXPECT_LT(share, 0.18);
  // A smaller fraction holds out a subset of a larger one's problems: evaluating with heldout=0.05
  // a model trained with heldout=0.15 still never sees a training problem.
  auto smaller = Make("arithmetic", "digits=2,ops=+,heldout=0.05");
  for (uint64_t i = 0; i < 500; ++i) EXPECT_EQ(train.count(smaller->Generate(Split::kHeldOut, i).prompt), 0u);
}

}  // namespace
}  // namespace r1::rl
