// jsonl:PATH — user tasks, one JSON object per line: {"prompt": "...", "answer": "..." or a
// number, optional "solution": "worked reasoning"}. Blank lines are skipped.
//
// args: heldout=F (default 0.1): every k-th problem (k = round(1/F)) is held out, the rest train.
// Answers that parse as numbers (integers, decimals, fractions like 3/4, thousands commas) are
// compared as exact rationals; other answers as whitespace-trimmed strings, case-sensitive.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "core/check.h"
#include "rl/rational.h"
#include "rl/tasks.h"

namespace r1::rl {
namespace {

struct Entry {
  std::string prompt;
  std::string answer;
  std::string solution;  // may be empty
  int64_t line = 0;      // 1-based line in the file
};

class JsonlTask : public Task {
 public:
  JsonlTask(std::string name, std::vector<Entry> train, std::vector<Entry> heldout)
      : name_(std::move(name)), train_(std::move(train)), heldout_(std::move(heldout)) {}

  const std::string& name() const override { return name_; }

  // The index wraps around the split, so every index is valid.
  Problem Generate(Split split, uint64_t index) const override {
    const std::vector<Entry>& entries = split == Split::kTrain ? train_ : heldout_;
    R1_CHECK(!entries.empty());
    const Entry& e = entries[index % entries.size()];
    Problem p;
    p.task = name_;
    p.prompt = e.prompt;
    p.answer = e.answer;
    p.data = {{"line", e.line}};
    if (!e.solution.empty()) p.data["solution"] = e.solution;
    return p;
  }

  bool Verify(const Problem& p, std::string_view answer) const override {
    if (const std::optional<Rational> expected = ParseNumber(p.answer)) {
      const std::optional<Rational> got = ParseNumber(answer);
      return got && *got == *expected;
    }
    return TrimSpace(answer) == TrimSpace(p.answer);
  }

  // With a "solution" field: its text as the reasoning; without: a one-line restatement (user
  // tasks carry no worked steps to imitate).
  std::string Solution(const Problem& p, uint64_t variant) const override {
    static const char* kFinal[] = {"The answer is ", "", "Answer: "};
    const int v = static_cast<int>(variant % 3);
    const std::string reasoning =
        p.data.contains("solution") ? p.data["solution"].get<std::string>() : "The answer is " + p.answer + ".";
    return ThinkFormat(reasoning, kFinal[v] + Boxed(p.answer) + (v == 1 ? "" : "."));
  }

 private:
  std::string name_;
  std::vector<Entry> train_, heldout_;
};

}  // namespace

Result<std::unique_ptr<Task>> MakeJsonlTask(const std::string& path, TaskArgs& args) {
  R1_ASSIGN_OR_RETURN(double heldout, args.Fraction("heldout", 0.1, 0.01, 0.5));
  const uint64_t k = std::max<uint64_t>(2, static_cast<uint64_t>(std::llround(1.0 / heldout)));
  std::ifstream in(path);
  if (!in) return NotFound("jsonl task: cannot open " + path);
  std::vector<Entry> train, held;
  std::string text;
  int64_t line_no = 0;
  uint64_t count = 0;
  while (std::getline(in, text)) {
    ++line_no;
    if (TrimSpace(text).empty()) continue;
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return DataLoss(where + "expected a JSON object");
    Entry e;
    e.line = line_no;
    if (!j.contains("prompt") || !j["prompt"].is_string()) return DataLoss(where + "\"prompt\": expected a string");
    e.prompt = j["prompt"].get<std::string>();
    if (!j.contains("answer")) return DataLoss(where + "\"answer\": missing");
    const nlohmann::json& a = j["answer"];
    if (a.is_string()) {
      e.answer = a.get<std::string>();
    } else if (a.is_number()) {
      e.answer = a.dump();  // shortest round-trip text: 0.1 -> "0.1"
    } else {
      return DataLoss(where + "\"answer\": expected a string or a number");
    }
    if (TrimSpace(e.answer).empty()) return DataLoss(where + "\"answer\": empty");
    if (j.contains("solution")) {
      if (!j["solution"].is_string()) return DataLoss(where + "\"solution\": expected a string");
      e.solution = j["solution"].get<std::string>();
    }
    (++count % k == 0 ? held : train).push_back(std::move(e));
  }
  if (in.bad()) return IoError("jsonl task: reading " + path + " failed");
  if (held.empty() || train.empty())
    return InvalidArgument("jsonl task: " + path + " has " + std::to_string(count) +
                           " problems, too few for a train and a held-out split (heldout=" + std::to_string(heldout) +
                           " holds out every " + std::to_string(k) + "th)");
  return std::unique_ptr<Task>(std::make_unique<JsonlTask>("jsonl:" + path, std::move(train), std::move(held)));
}

}  // namespace r1::rl
