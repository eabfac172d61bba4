// linear: "Solve for x: 3x + 7 = 22." — one linear equation a·x + b = c with an integer solution.
//
// args: a=A-B (coefficient range, 0 skipped; default -9-9), b=A-B (constant; default -20-20),
//       x=A-B (the solution; default -10-10), seed=N, heldout=F.
// The worked solution moves the constant to the right side, then divides by the coefficient.
#include <string>

#include "core/check.h"
#include "rl/generated_task.h"
#include "rl/rational.h"
#include "rl/tasks.h"

namespace r1::rl {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

// "3x", "x", "-x", "-3x".
std::string Term(int64_t a) { return a == 1 ? "x" : a == -1 ? "-x" : S(a) + "x"; }

// "3x + 7", "3x - 7", "3x".
std::string LeftSide(int64_t a, int64_t b) {
  if (b == 0) return Term(a);
  return Term(a) + (b > 0 ? " + " + S(b) : " - " + S(-b));
}

int64_t Draw1(Rng& rng, IntRange r) {
  return r.lo + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(r.hi - r.lo + 1)));
}

class LinearTask : public GeneratedTask {
 public:
  LinearTask(const GeneratedTaskOptions& o, IntRange a, IntRange b, IntRange x)
      : GeneratedTask("linear", o), a_(a), b_(b), x_(x) {}

  bool Verify(const Problem& p, std::string_view answer) const override {
    if (!HasIntegerFields(p, {"x"})) return false;
    // "x = 5" counts as "5".
    answer = TrimSpace(answer);
    if (!answer.empty() && (answer.front() == 'x' || answer.front() == 'X')) {
      answer = TrimSpace(answer.substr(1));
      if (answer.empty() || answer.front() != '=') return false;
      answer = answer.substr(1);
    }
    const std::optional<Rational> v = ParseNumber(answer);
    return v && *v == Rational(p.data["x"].get<int64_t>());
  }

  std::string Solution(const Problem& p, uint64_t variant) const override {
    R1_CHECK(p.task == name() && HasIntegerFields(p, {"a", "b", "c", "x"})) << "Solution of a problem from another task";
    const int64_t a = p.data["a"], b = p.data["b"], c = p.data["c"], x = p.data["x"];
    const int v = static_cast<int>(variant % 3);
    std::string steps = LeftSide(a, b) + " = " + S(c) + "\n";
    const int64_t rhs = c - b;
    if (b > 0) {
      static const char* kMove[] = {"Subtract ", "Take away ", "Subtract "};
      static const char* kSides[] = {" from both sides: ", " on both sides: ", " from each side: "};
      steps += kMove[v] + S(b) + kSides[v] + Term(a) + " = " + S(c) + " - " + S(b) + " = " + S(rhs) + "\n";
    } else if (b < 0) {
      static const char* kSides[] = {" to both sides: ", " to both sides: ", " to each side: "};
      steps += "Add " + S(-b) + kSides[v] + Term(a) + " = " + S(c) + " + " + S(-b) + " = " + S(rhs) + "\n";
    }
    if (a != 1) {
      static const char* kDivide[] = {"Divide both sides by ", "Divide by ", "Divide each side by "};
      steps += kDivide[v] + S(a) + ": x = " + S(rhs) + " / " + S(a) + " = " + S(x) + "\n";
    }
    static const char* kCheck[] = {"Check: ", "Verify: ", "Check: "};
    const std::string x_text = x < 0 ? std::string("(").append(S(x)).append(")") : S(x);
    steps += kCheck[v] + S(a) + "*" + x_text + (b >= 0 ? " + " : " - ") + S(b < 0 ? -b : b) + " = " + S(c) + ".";
    static const char* kFinal[] = {"x = ", "The solution is x = ", "So x = "};
    return ThinkFormat(steps, kFinal[v] + Boxed(S(x)) + (v == 0 ? "" : "."));
  }

 protected:
  std::optional<Problem> Draw(Rng& rng) const override {
    const int64_t a = Draw1(rng, a_), b = Draw1(rng, b_), x = Draw1(rng, x_);
    if (a == 0) return std::nullopt;
    const int64_t c = a * x + b;
    Problem p;
    p.task = name();
    p.prompt = "Solve for x: " + LeftSide(a, b) + " = " + S(c) + ".";
    p.answer = S(x);
    p.data = {{"a", a}, {"b", b}, {"c", c}, {"x", x}};
    return p;
  }

  std::string Key(const Problem& p) const override {
    return S(p.data["a"].get<int64_t>()) + "," + S(p.data["b"].get<int64_t>()) + "," + S(p.data["c"].get<int64_t>());
  }

 private:
  IntRange a_, b_, x_;
};

}  // namespace

Result<std::unique_ptr<Task>> MakeLinearTask(TaskArgs& args) {
  R1_ASSIGN_OR_RETURN(GeneratedTaskOptions o, ParseGeneratedTaskOptions(args));
  R1_ASSIGN_OR_RETURN(IntRange a, args.Range("a", IntRange{-9, 9}, -1000, 1000));
  R1_ASSIGN_OR_RETURN(IntRange b, args.Range("b", IntRange{-20, 20}, -1000000, 1000000));
  R1_ASSIGN_OR_RETURN(IntRange x, args.Range("x", IntRange{-10, 10}, -1000000, 1000000));
  if (a.lo == 0 && a.hi == 0) return InvalidArgument("linear task args: a: the range must contain a non-zero value, got '0'");
  auto task = std::make_unique<LinearTask>(o, a, b, x);
  R1_RETURN_IF_ERROR(task->CheckSplitsReachable());
  return std::unique_ptr<Task>(std::move(task));
}

}  // namespace r1::rl
