// arithmetic: "What is 47 + 85?" — multi-digit + - * with carries and borrows.
//
// args: digits=A-B (digits of each operand, drawn independently; default 2-3, at most 9),
//       ops=+-* (the operators to draw from; default all three), seed=N, heldout=F.
// The worked solution is column arithmetic, one short line per digit (a tiny model must learn to
// produce it): "7+5+0=12, write 2 carry 1" for addition, "15-7=8, borrow 1" for subtraction, and
// for multiplication one partial product per digit of the second operand, then running sums.
#include <algorithm>
#include <string>
#include <vector>

#include "core/check.h"
#include "rl/generated_task.h"
#include "rl/rational.h"
#include "rl/tasks.h"

namespace r1::rl {
namespace {

int64_t Pow10(int64_t n) {
  int64_t p = 1;
  while (n-- > 0) p *= 10;
  return p;
}

// Digits least significant first.
std::vector<int> Digits(int64_t v) {
  std::vector<int> d;
  do {
    d.push_back(static_cast<int>(v % 10));
    v /= 10;
  } while (v > 0);
  return d;
}

std::string S(int64_t v) { return std::to_string(v); }

// Column addition of non-negative a + b; one line per column.
std::string AdditionSteps(int64_t a, int64_t b) {
  const std::vector<int> da = Digits(a), db = Digits(b);
  std::string out;
  int carry = 0;
  const size_t n = std::max(da.size(), db.size());
  for (size_t i = 0; i < n; ++i) {
    const int x = i < da.size() ? da[i] : 0, y = i < db.size() ? db[i] : 0;
    const int sum = x + y + carry;
    out += S(x) + "+" + S(y) + "+" + S(carry) + "=" + S(sum) + ", write " + S(sum % 10);
    carry = sum / 10;
    out += carry ? " carry 1\n" : "\n";
  }
  if (carry) out += "write the carry 1\n";
  return out;
}

// Column subtraction of a - b with a >= b >= 0; one line per column.
std::string SubtractionSteps(int64_t a, int64_t b) {
  const std::vector<int> da = Digits(a), db = Digits(b);
  std::string out;
  int borrow = 0;
  for (size_t i = 0; i < da.size(); ++i) {
    const int x = da[i], y = i < db.size() ? db[i] : 0;
    std::string lhs = S(x) + (borrow ? "-1" : "") + "-" + S(y);
    int r = x - borrow - y;
    if (r < 0) {
      r += 10;
      out += "1" + lhs + "=" + S(r) + ", borrow 1\n";
      borrow = 1;
    } else {
      out += lhs + "=" + S(r) + "\n";
      borrow = 0;
    }
  }
  return out;
}

class ArithmeticTask : public GeneratedTask {
 public:
  ArithmeticTask(const GeneratedTaskOptions& o, IntRange digits, std::string ops)
      : GeneratedTask("arithmetic", o), digits_(digits), ops_(std::move(ops)) {}

  bool Verify(const Problem& p, std::string_view answer) const override {
    if (!HasIntegerFields(p, {"result"})) return false;
    // "47 + 85 = 132" counts as "132": take the text after the last '='.
    if (const size_t eq = answer.rfind('='); eq != std::string_view::npos) answer = answer.substr(eq + 1);
    const std::optional<Rational> v = ParseNumber(answer);
    return v && *v == Rational(p.data["result"].get<int64_t>());
  }

  std::string Solution(const Problem& p, uint64_t variant) const override {
    R1_CHECK(p.task == name() && HasIntegerFields(p, {"a", "b", "result"})) << "Solution of a problem from another task";
    const int64_t a = p.data["a"], b = p.data["b"], r = p.data["result"];
    const std::string op = p.data["op"];
    const std::string q = S(a) + " " + op + " " + S(b);
    const int v = static_cast<int>(variant % 3);
    std::string steps;
    if (op == "+") {
      static const char* kIntro[] = {"Add column by column from the right.", "Add the digits right to left, with carries.",
                                     "Column addition:"};
      steps = kIntro[v] + std::string("\n") + AdditionSteps(a, b);
    } else if (op == "-") {
      static const char* kIntro[] = {"Subtract column by column from the right.",
                                     "Subtract the digits right to left, with borrows.", "Column subtraction:"};
      steps = kIntro[v] + std::string("\n");
      if (a >= b) {
        steps += SubtractionSteps(a, b);
      } else {
        steps += S(b) + " is larger, so compute " + S(b) + "-" + S(a) + " and negate.\n" + SubtractionSteps(b, a);
      }
    } else {
      static const char* kIntro[] = {"Multiply by each digit, then add.", "Partial products, then their sum.",
                                     "Long multiplication:"};
      steps = kIntro[v] + std::string("\n");
      const std::vector<int> db = Digits(b);
      int64_t sum = 0;
      std::vector<int64_t> partials;
      for (size_t i = 0; i < db.size(); ++i) {
        const int64_t m = db[i] * Pow10(static_cast<int64_t>(i));
        partials.push_back(a * m);
        steps += S(a) + "*" + S(m) + "=" + S(a * m) + "\n";
      }
      sum = partials[0];
      for (size_t i = 1; i < partials.size(); ++i) {
        steps += S(sum) + "+" + S(partials[i]) + "=" + S(sum + partials[i]) + "\n";
        sum += partials[i];
      }
    }
    static const char* kResult[] = {"So ", "Result: ", "That gives "};
    steps += kResult[v] + q + " = " + S(r) + ".";
    static const char* kFinal[] = {"The answer is ", "", "So "};
    const std::string boxed = Boxed(S(r));
    const std::string final_answer =
        v == 0 ? kFinal[0] + boxed + "." : v == 1 ? q + " = " + boxed : kFinal[2] + q + " = " + boxed + ".";
    return ThinkFormat(steps, final_answer);
  }

 protected:
  std::optional<Problem> Draw(Rng& rng) const override {
    auto operand = [&]() {
      const int64_t nd = digits_.lo + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(digits_.hi - digits_.lo + 1)));
      const int64_t lo = nd == 1 ? 0 : Pow10(nd - 1);
      return lo + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(Pow10(nd) - lo)));
    };
    const char op = ops_[rng.Below(ops_.size())];
    const int64_t a = operand(), b = operand();
    const int64_t r = op == '+' ? a + b : op == '-' ? a - b : a * b;
    Problem p;
    p.task = name();
    p.prompt = "What is " + S(a) + " " + op + " " + S(b) + "?";
    p.answer = S(r);
    p.data = {{"a", a}, {"b", b}, {"op", std::string(1, op)}, {"result", r}};
    return p;
  }

  std::string Key(const Problem& p) const override {
    return S(p.data["a"].get<int64_t>()) + p.data["op"].get<std::string>() + S(p.data["b"].get<int64_t>());
  }

 private:
  IntRange digits_;
  std::string ops_;
};

}  // namespace

Result<std::unique_ptr<Task>> MakeArithmeticTask(TaskArgs& args) {
  R1_ASSIGN_OR_RETURN(GeneratedTaskOptions o, ParseGeneratedTaskOptions(args));
  R1_ASSIGN_OR_RETURN(IntRange digits, args.Range("digits", IntRange{2, 3}, 1, 9));
  R1_ASSIGN_OR_RETURN(std::string ops_arg, args.String("ops", "+-*"));
  std::string ops;
  for (char c : ops_arg) {
    if (c == 'x' || c == 'X') c = '*';
    if (c != '+' && c != '-' && c != '*')
      return InvalidArgument("arithmetic task args: ops: expected a subset of +-*, got '" + ops_arg + "'");
    if (ops.find(c) == std::string::npos) ops += c;
  }
  if (ops.empty()) return InvalidArgument("arithmetic task args: ops: expected a subset of +-*, got ''");
  auto task = std::make_unique<ArithmeticTask>(o, digits, ops);
  R1_RETURN_IF_ERROR(task->CheckSplitsReachable());
  return std::unique_ptr<Task>(std::move(task));
}

}  // namespace r1::rl
