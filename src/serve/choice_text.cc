#include "serve/choice_text.h"

#include <algorithm>
#include <cctype>

namespace r1::serve {
namespace {
constexpr const char* kThink = "<think>";
constexpr const char* kEndThink = "</think>";
}  // namespace

size_t PartialSuffix(const std::string& text, const std::string& pattern) {
  const size_t max = std::min(text.size(), pattern.empty() ? 0 : pattern.size() - 1);
  for (size_t n = max; n > 0; --n)
    if (text.compare(text.size() - n, n, pattern, 0, n) == 0) return n;
  return 0;
}

ChoiceText::ChoiceText(const tok::Tokenizer& tokenizer, std::vector<std::string> stop, bool split_reasoning)
    : decoder_(tokenizer), split_(split_reasoning), phase_(split_reasoning ? Phase::kStart : Phase::kContent) {
  for (std::string& s : stop)
    if (!s.empty()) stop_.push_back(std::move(s));
}

TextDelta ChoiceText::Push(int32_t id) {
  TextDelta out;
  if (stopped_ || finished_) return out;
  ++tokens_;
  if (phase_ != Phase::kContent) ++reasoning_tokens_;
  pending_ += decoder_.Push(id);
  // The earliest stop string wins.
  size_t at = std::string::npos;
  for (const std::string& s : stop_) at = std::min(at, pending_.find(s));
  if (at != std::string::npos) {
    stopped_ = true;
    Release(pending_.substr(0, at), /*final=*/true, &out);
    pending_.clear();
    return out;
  }
  size_t hold = 0;
  for (const std::string& s : stop_) hold = std::max(hold, PartialSuffix(pending_, s));
  const std::string clear = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  Release(clear, /*final=*/false, &out);
  return out;
}

TextDelta ChoiceText::Finish() {
  TextDelta out;
  if (finished_) return out;
  finished_ = true;
  if (!stopped_) {
    pending_ += decoder_.Finish();
    Release(pending_, /*final=*/true, &out);
    pending_.clear();
  } else {
    Split(/*final=*/true, &out);
  }
  return out;
}

void ChoiceText::Release(const std::string& text, bool final, TextDelta* out) {
  split_buf_ += text;
  Split(final, out);
}

void ChoiceText::Split(bool final, TextDelta* out) {
  const std::string think = kThink, end_think = kEndThink;
  if (phase_ == Phase::kStart) {
    // Wait until the leading whitespace is followed by enough text to tell "<think>" apart.
    size_t ws = 0;
    while (ws < split_buf_.size() && std::isspace(static_cast<unsigned char>(split_buf_[ws]))) ++ws;
    const std::string rest = split_buf_.substr(ws);
    if (rest.size() >= think.size() || (!rest.empty() && think.compare(0, rest.size(), rest) != 0) || final) {
      if (rest.compare(0, think.size(), think) == 0) split_buf_.erase(0, ws + think.size());
      phase_ = Phase::kReasoning;
    } else {
      return;
    }
  }
  if (phase_ == Phase::kReasoning) {
    const size_t at = split_buf_.find(end_think);
    if (at != std::string::npos) {
      out->reasoning += split_buf_.substr(0, at);
      split_buf_.erase(0, at + end_think.size());
      phase_ = Phase::kContent;
    } else {
      const size_t hold = final ? 0 : PartialSuffix(split_buf_, end_think);
      out->reasoning += split_buf_.substr(0, split_buf_.size() - hold);
      split_buf_.erase(0, split_buf_.size() - hold);
      return;
    }
  }
  out->content += split_buf_;
  split_buf_.clear();
}

}  // namespace r1::serve
