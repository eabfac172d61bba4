// sort: "Sort in ascending order: 42, 7, 19, 88, 3." — answer "3, 7, 19, 42, 88".
//
// args: n=A-B (how many numbers; default 4-6, 2..12), max=M (numbers drawn from 0..M, repeats
//       allowed; default 99), seed=N, heldout=F.
// The worked solution is selection sort: one line per step naming the smallest remaining number.
// The canonical key is the sorted multiset, so the same numbers in another order are the same
// problem (and land in the same split).
#include <algorithm>
#include <string>
#include <vector>

#include "core/check.h"
#include "rl/generated_task.h"
#include "rl/rational.h"
#include "rl/tasks.h"

namespace r1::rl {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

std::string Join(const std::vector<int64_t>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + S(v[i]);
  return out;
}

// Integers separated by commas and/or whitespace, optionally in [...] or (...); nullopt on
// anything else. At most `max_items` items (longer answers are wrong anyway).
std::optional<std::vector<int64_t>> ParseList(std::string_view s, size_t max_items) {
  s = TrimSpace(s);
  if (s.size() >= 2 && ((s.front() == '[' && s.back() == ']') || (s.front() == '(' && s.back() == ')')))
    s = s.substr(1, s.size() - 2);
  std::vector<int64_t> out;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == ',') {
      ++i;
      continue;
    }
    size_t j = i;
    if (s[j] == '-' || s[j] == '+') ++j;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    const std::optional<int64_t> v = ParseInteger(s.substr(i, j - i));
    if (!v || out.size() >= max_items) return std::nullopt;
    out.push_back(*v);
    i = j;
  }
  return out;
}

class SortTask : public GeneratedTask {
 public:
  SortTask(const GeneratedTaskOptions& o, IntRange count, int64_t max)
      : GeneratedTask("sort", o), count_(count), max_(max) {}

  bool Verify(const Problem& p, std::string_view answer) const override {
    if (!HasIntegerFields(p, {}, "numbers")) return false;
    std::vector<int64_t> expected = p.data["numbers"];
    std::sort(expected.begin(), expected.end());
    const std::optional<std::vector<int64_t>> got = ParseList(answer, expected.size());
    return got && *got == expected;
  }

  std::string Solution(const Problem& p, uint64_t variant) const override {
    R1_CHECK(p.task == name() && HasIntegerFields(p, {}, "numbers")) << "Solution of a problem from another task";
    std::vector<int64_t> left = p.data["numbers"];
    const int v = static_cast<int>(variant % 3);
    static const char* kIntro[] = {"Take the smallest remaining number each time.", "Selection sort:",
                                   "Pick the minimum, remove it, repeat."};
    std::string steps = kIntro[v] + std::string("\n");
    std::vector<int64_t> sorted;
    while (!left.empty()) {
      auto it = std::min_element(left.begin(), left.end());
      steps += Join(left, " ") + " -> " + S(*it) + "\n";
      sorted.push_back(*it);
      left.erase(it);
    }
    static const char* kResult[] = {"Sorted: ", "In order: ", "Result: "};
    steps += kResult[v] + Join(sorted, ", ") + ".";
    static const char* kFinal[] = {"The answer is ", "", "Sorted: "};
    return ThinkFormat(steps, kFinal[v] + Boxed(Join(sorted, ", ")) + (v == 1 ? "" : "."));
  }

 protected:
  std::optional<Problem> Draw(Rng& rng) const override {
    const int64_t n = count_.lo + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(count_.hi - count_.lo + 1)));
    std::vector<int64_t> numbers(static_cast<size_t>(n));
    for (int64_t& x : numbers) x = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(max_ + 1)));
    std::vector<int64_t> sorted = numbers;
    std::sort(sorted.begin(), sorted.end());
    Problem p;
    p.task = name();
    p.prompt = "Sort in ascending order: " + Join(numbers, ", ") + ".";
    p.answer = Join(sorted, ", ");
    p.data = {{"numbers", numbers}};
    return p;
  }

  std::string Key(const Problem& p) const override {
    std::vector<int64_t> sorted = p.data["numbers"];
    std::sort(sorted.begin(), sorted.end());
    return Join(sorted, ",");
  }

 private:
  IntRange count_;
  int64_t max_;
};

}  // namespace

Result<std::unique_ptr<Task>> MakeSortTask(TaskArgs& args) {
  R1_ASSIGN_OR_RETURN(GeneratedTaskOptions o, ParseGeneratedTaskOptions(args));
  R1_ASSIGN_OR_RETURN(IntRange count, args.Range("n", IntRange{4, 6}, 2, 12));
  R1_ASSIGN_OR_RETURN(int64_t max, args.Int("max", 99, 1, 1000000));
  auto task = std::make_unique<SortTask>(o, count, max);
  R1_RETURN_IF_ERROR(task->CheckSplitsReachable());
  return std::unique_ptr<Task>(std::move(task));
}

}  // namespace r1::rl
