// countdown: "Using the numbers 3, 7, 25, make 46. ..." — reach a target from the given numbers
// with + - * /, each number at most once (not all needed), as in TinyZero's Countdown.
//
// args: numbers=A-B (how many numbers are given; default 3-4, 2..6), max=M (numbers are drawn from
//       1..M; default 50), target=A-B (target range; default 10-100), seed=N, heldout=F.
// The generator guarantees a solution: it combines a random subset of the numbers pairwise with
// random operations whose intermediate results are positive integers, and the result is the
// target. The verifier evaluates the answer expression exactly (rl/expression.h).
#include <algorithm>
#include <string>
#include <vector>

#include "rl/expression.h"
#include "core/check.h"
#include "rl/generated_task.h"
#include "rl/tasks.h"

namespace r1::rl {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

// Failed tries stop once the trace would pass this many characters, so that a solution stays
// within ~150 tokens of a small BPE vocabulary (docs/rl-tasks.md).
constexpr size_t kMaxSearchChars = 90;

// A sub-expression while building: its value, its text and its precedence (3 = number,
// 2 = * /, 1 = + -) so the text gets parentheses only where needed.
struct Item {
  int64_t value;
  std::string text;
  int prec;
};

struct Step {
  int64_t a;
  char op;
  int64_t b;
  int64_t result;
};

// Applies a random valid operation to a and b (positive integer result, no "* 1" or "/ 1", no
// huge products); nullopt when the random choice is not valid for this pair.
std::optional<Step> RandomStep(Rng& rng, int64_t a, int64_t b) {
  static const char kOps[] = {'+', '-', '*', '/'};
  const char op = kOps[rng.Below(4)];
  if (op == '-' || op == '/') {
    if (a < b) std::swap(a, b);
  }
  switch (op) {
    case '+':
      return Step{a, op, b, a + b};
    case '-':
      if (a == b) return std::nullopt;
      return Step{a, op, b, a - b};
    case '*':
      if (a == 1 || b == 1 || a * b > 100000) return std::nullopt;
      return Step{a, op, b, a * b};
    default:
      if (b == 1 || a % b != 0) return std::nullopt;
      return Step{a, op, b, a / b};
  }
}

Item Combine(const Item& l, char op, const Item& r, int64_t value) {
  const int prec = (op == '+' || op == '-') ? 1 : 2;
  const bool lp = l.prec < prec;
  const bool rp = r.prec < prec || (r.prec == prec && (op == '-' || op == '/'));
  return Item{value, (lp ? "(" + l.text + ")" : l.text) + op + (rp ? "(" + r.text + ")" : r.text), prec};
}

std::string StepText(const Step& s) { return S(s.a) + std::string(1, s.op) + S(s.b) + "=" + S(s.result); }

class CountdownTask : public GeneratedTask {
 public:
  CountdownTask(const GeneratedTaskOptions& o, IntRange count, int64_t max, IntRange target)
      : GeneratedTask("countdown", o), count_(count), max_(max), target_(target) {}

  bool Verify(const Problem& p, std::string_view answer) const override {
    if (!HasIntegerFields(p, {"target"}, "numbers")) return false;
    const int64_t target = p.data["target"];
    // "7*3+25 = 46" counts as "7*3+25" when the right side is the target.
    if (const size_t eq = answer.rfind('='); eq != std::string_view::npos) {
      const std::optional<int64_t> rhs = ParseInteger(answer.substr(eq + 1));
      if (!rhs || *rhs != target) return false;
      answer = answer.substr(0, eq);
    }
    Result<EvaluatedExpression> e = EvaluateExpression(answer);
    if (!e.ok() || !(e->value == Rational(target))) return false;
    std::vector<int64_t> available = p.data["numbers"].get<std::vector<int64_t>>();
    for (int64_t n : e->numbers) {
      auto it = std::find(available.begin(), available.end(), n);
      if (it == available.end()) return false;  // not given, or given fewer times
      available.erase(it);
    }
    return true;
  }

  std::string Solution(const Problem& p, uint64_t variant) const override {
    R1_CHECK(p.task == name() && HasIntegerFields(p, {"target"}, "numbers")) << "Solution of a problem from another task";
    const std::vector<int64_t> numbers = p.data["numbers"];
    const int64_t target = p.data["target"];
    const std::string expr = p.answer;
    std::string list;
    for (size_t i = 0; i < numbers.size(); ++i) list += (i ? ", " : "") + S(numbers[i]);
    const int v = static_cast<int>(variant % 3);
    static const char* kIntro[] = {"Target ", "Make ", "Goal: "};
    std::string steps = kIntro[v] + S(target) + " from " + list + ".\n";
    // A short search: up to two failed tries (chosen by `variant`), then the generator's solution.
    Rng rng(StableHash(Key(p), variant));
    const int failures = static_cast<int>(variant % 3);
    for (int f = 0, attempts = 0; f < failures && attempts < 50; ++attempts) {
      std::vector<int64_t> pool = numbers;
      for (size_t i = pool.size(); i > 1; --i) std::swap(pool[i - 1], pool[rng.Below(i)]);
      const size_t uses = 2 + rng.Below(pool.size() - 1);
      std::string line = "Try ";
      int64_t acc = pool[0];
      bool ok = true;
      for (size_t i = 1; i < uses && ok; ++i) {
        const std::optional<Step> s = RandomStep(rng, acc, pool[i]);
        if (!s || s->result == target) {
          ok = false;
          break;
        }
        line += (i > 1 ? ", " : "") + StepText(*s);
        acc = s->result;
      }
      if (!ok) continue;
      if (steps.size() + line.size() > kMaxSearchChars) break;  // keep the whole solution short
      steps += line + ". No.\n";
      ++f;
    }
    std::string line = "Try ";
    const nlohmann::json& solution_steps = p.data["steps"];
    for (size_t i = 0; i < solution_steps.size(); ++i) {
      const nlohmann::json& s = solution_steps[i];
      line += (i ? ", " : "") + StepText(Step{s[0], s[1].get<std::string>()[0], s[2], s[3]});
    }
    steps += line + ". Yes.\n";
    steps += expr + " = " + S(target) + ".";
    static const char* kFinal[] = {"The answer is ", "", "Expression: "};
    return ThinkFormat(steps, kFinal[v] + Boxed(expr) + (v == 1 ? "" : "."));
  }

 protected:
  std::optional<Problem> Draw(Rng& rng) const override {
    const int64_t n = count_.lo + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(count_.hi - count_.lo + 1)));
    std::vector<int64_t> numbers(static_cast<size_t>(n));
    for (int64_t& x : numbers) x = 1 + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(max_)));
    // The solution uses the first k numbers of a shuffled copy, combined pairwise in random order.
    std::vector<int64_t> order = numbers;
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.Below(i)]);
    const size_t k = 2 + rng.Below(order.size() - 1);
    std::vector<Item> items;
    for (size_t i = 0; i < k; ++i) items.push_back(Item{order[i], S(order[i]), 3});
    nlohmann::json steps = nlohmann::json::array();
    while (items.size() > 1) {
      const size_t i = rng.Below(items.size());
      size_t j = rng.Below(items.size() - 1);
      if (j >= i) ++j;
      const std::optional<Step> s = RandomStep(rng, items[i].value, items[j].value);
      if (!s) return std::nullopt;
      const bool swapped = s->a != items[i].value;
      const Item& l = swapped ? items[j] : items[i];
      const Item& r = swapped ? items[i] : items[j];
      Item combined = Combine(l, s->op, r, s->result);
      steps.push_back({s->a, std::string(1, s->op), s->b, s->result});
      items.erase(items.begin() + static_cast<std::ptrdiff_t>(std::max(i, j)));
      items.erase(items.begin() + static_cast<std::ptrdiff_t>(std::min(i, j)));
      items.push_back(std::move(combined));
    }
    const int64_t target = items[0].value;
    if (target < target_.lo || target > target_.hi) return std::nullopt;
    if (std::find(numbers.begin(), numbers.end(), target) != numbers.end()) return std::nullopt;  // trivial
    std::string list;
    for (size_t i = 0; i < numbers.size(); ++i) list += (i ? ", " : "") + S(numbers[i]);
    Problem p;
    p.task = name();
    p.prompt = "Using the numbers " + list + ", make " + S(target) +
               ". You may use + - * / and each number at most once.";
    p.answer = items[0].text;
    p.data = {{"numbers", numbers}, {"target", target}, {"steps", steps}};
    return p;
  }

  std::string Key(const Problem& p) const override {
    std::vector<int64_t> numbers = p.data["numbers"];
    std::sort(numbers.begin(), numbers.end());
    std::string key;
    for (int64_t x : numbers) key += S(x) + ",";
    return key + "->" + S(p.data["target"].get<int64_t>());
  }

 private:
  IntRange count_;
  int64_t max_;
  IntRange target_;
};

}  // namespace

Result<std::unique_ptr<Task>> MakeCountdownTask(TaskArgs& args) {
  R1_ASSIGN_OR_RETURN(GeneratedTaskOptions o, ParseGeneratedTaskOptions(args));
  R1_ASSIGN_OR_RETURN(IntRange count, args.Range("numbers", IntRange{3, 4}, 2, 6));
  R1_ASSIGN_OR_RETURN(int64_t max, args.Int("max", 50, 2, 1000));
  R1_ASSIGN_OR_RETURN(IntRange target, args.Range("target", IntRange{10, 100}, 1, 1000000));
  auto task = std::make_unique<CountdownTask>(o, count, max, target);
  R1_RETURN_IF_ERROR(task->CheckSplitsReachable());
  return std::unique_ptr<Task>(std::move(task));
}

}  // namespace r1::rl
