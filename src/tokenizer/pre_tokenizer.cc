#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/log.h"

namespace r1::tok {

using json = nlohmann::json;

struct PreTokenizer::Step {
  enum Kind { kSplit, kByteLevel } kind = kSplit;
  std::unique_ptr<Regex> regex;  // kSplit; kByteLevel with use_regex
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;  // kByteLevel
};

PreTokenizer::PreTokenizer() = default;
PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;

namespace {

// = tokenizers' pre_tokenizers/byte_level.rs RE (the GPT-2 pattern).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Result<SplitBehavior> ParseBehavior(const json& j) {
  const std::string b = j.is_string() ? j.get<std::string>() : "";
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return Unimplemented("pre_tokenizer Split: unsupported behavior " + j.dump());
}

bool GetBool(const json& j, const char* key, bool def) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : def;
}

}  // namespace

void ApplySplitBehavior(SplitBehavior behavior, const std::vector<std::pair<Span, bool>>& segments,
                        std::vector<Span>* out) {
  out->clear();
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& [span, is_match] : segments) {
        if (!is_match) out->push_back(span);
      }
      return;
    case SplitBehavior::kIsolated:
      for (const auto& seg : segments) out->push_back(seg.first);
      return;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& [span, is_match] : segments) {
        if (is_match && !previous_match && !out->empty()) {
          out->back().end = span.end;
        } else {
          out->push_back(span);
        }
        previous_match = is_match;
      }
      return;
    case SplitBehavior::kMergedWithNext:
      for (size_t k = segments.size(); k-- > 0;) {
        const auto& [span, is_match] = segments[k];
        if (is_match && !previous_match && !out->empty()) {
          out->back().begin = span.begin;
        } else {
          out->push_back(span);
        }
        previous_match = is_match;
      }
      std::reverse(out->begin(), out->end());
      return;
    case SplitBehavior::kContiguous:
      for (size_t k = 0; k < segments.size(); ++k) {
        const auto& [span, is_match] = segments[k];
        if (k > 0 && is_match == previous_match) {
          out->back().end = span.end;
        } else {
          out->push_back(span);
        }
        previous_match = is_match;
      }
      return;
  }
}

Result<PreTokenizer> PreTokenizer::FromJson(const json& j) {
  PreTokenizer pt;
  if (j.is_null()) return pt;
  // Flatten nested Sequences into one list of steps.
  std::vector<const json*> flat;
  auto flatten = [&](auto&& self, const json& node) -> Status {
    if (!node.is_object() || !node.contains("type")) {
      return InvalidArgument("pre_tokenizer: expected an object with a \"type\", got " +
                             node.dump().substr(0, 80));
    }
    if (node["type"] == "Sequence") {
      auto list = node.find("pretokenizers");
      if (list == node.end() || !list->is_array()) {
        return InvalidArgument("pre_tokenizer Sequence: missing \"pretokenizers\" array");
      }
      for (const json& child : *list) R1_RETURN_IF_ERROR(self(self, child));
    } else {
      flat.push_back(&node);
    }
    return Status::Ok();
  };
  R1_RETURN_IF_ERROR(flatten(flatten, j));

  for (size_t k = 0; k < flat.size(); ++k) {
    const json& node = *flat[k];
    const std::string type = node["type"].get<std::string>();
    if (pt.byte_level_) {
      return Unimplemented("pre_tokenizer: " + type +
                           " after ByteLevel is unsupported (ByteLevel must be the last step)");
    }
    Step step;
    if (type == "Split") {
      const json& pat = node.value("pattern", json::object());
      if (pat.contains("Regex") && pat["Regex"].is_string()) {
        R1_ASSIGN_OR_RETURN(step.regex, Regex::Compile(pat["Regex"].get<std::string>()));
      } else if (pat.contains("String") && pat["String"].is_string()) {
        R1_ASSIGN_OR_RETURN(step.regex, Regex::Literal(pat["String"].get<std::string>()));
      } else {
        return InvalidArgument(
            "pre_tokenizer Split: pattern must be {\"Regex\": …} or "
            "{\"String\": …}, got " +
            pat.dump());
      }
      R1_ASSIGN_OR_RETURN(step.behavior, ParseBehavior(node.value("behavior", json())));
      step.invert = GetBool(node, "invert", false);
    } else if (type == "Digits") {
      // = pre_tokenizers/digits.rs: char::is_numeric runs, Isolated per digit or Contiguous.
      R1_ASSIGN_OR_RETURN(step.regex, Regex::Compile("\\p{N}"));
      step.behavior = GetBool(node, "individual_digits", false) ? SplitBehavior::kIsolated
                                                                : SplitBehavior::kContiguous;
    } else if (type == "ByteLevel") {
      step.kind = Step::kByteLevel;
      step.add_prefix_space = GetBool(node, "add_prefix_space", true);
      if (GetBool(node, "use_regex", true)) {
        R1_ASSIGN_OR_RETURN(step.regex, Regex::Compile(kGpt2Pattern));
      }
      pt.byte_level_ = true;
      // Without a regex or a prefix space the step leaves every piece as it is.
      if (step.regex == nullptr && !step.add_prefix_space) continue;
    } else {
      return Unimplemented("pre_tokenizer type \"" + type +
                           "\" is unsupported (supported: Sequence, Split, ByteLevel, Digits)");
    }
    pt.steps_.push_back(std::move(step));
  }
  return pt;
}

void PreTokenizer::Split(std::string_view text, std::vector<std::string_view>* pieces,
                         std::deque<std::string>* arena) const {
  // Scratch buffers reused across calls on this thread: Split runs once per text section.
  thread_local std::vector<std::string_view> cur, next;
  thread_local std::vector<Span> matches, kept;
  thread_local std::vector<std::pair<Span, bool>> segments;
  cur.assign(1, text);
  for (size_t k = 0; k < steps_.size(); ++k) {
    const Step& step = steps_[k];
    // The last step appends straight to `pieces`, dropping empty ones.
    const bool last = k + 1 == steps_.size();
    std::vector<std::string_view>& out = last ? *pieces : next;
    next.clear();
    auto emit = [&](std::string_view p) {
      if (!last || !p.empty()) out.push_back(p);
    };
    for (std::string_view piece : cur) {
      if (step.kind == Step::kByteLevel && step.add_prefix_space &&
          (piece.empty() || piece[0] != ' ')) {
        std::string& prefixed = arena->emplace_back();
        prefixed.reserve(piece.size() + 1);
        prefixed.push_back(' ');
        prefixed.append(piece);
        piece = arena->back();
      }
      if (step.regex == nullptr) {
        emit(piece);
        continue;
      }
      step.regex->FindAll(piece, &matches);
      if (step.kind == Step::kByteLevel || step.behavior == SplitBehavior::kIsolated) {
        // Matches and the gaps between them, all kept, in order (none is empty).
        size_t prev = 0;
        for (const Span& m : matches) {
          if (m.begin > prev) out.push_back(piece.substr(prev, m.begin - prev));
          out.push_back(piece.substr(m.begin, m.end - m.begin));
          prev = m.end;
        }
        if (prev < piece.size()) out.push_back(piece.substr(prev));
        continue;
      }
      segments.clear();
      size_t prev = 0;
      for (const Span& m : matches) {
        if (m.begin > prev) segments.push_back({{prev, m.begin}, step.invert});
        segments.push_back({m, !step.invert});
        prev = m.end;
      }
      if (prev < piece.size()) segments.push_back({{prev, piece.size()}, step.invert});
      ApplySplitBehavior(step.behavior, segments, &kept);
      for (const Span& s : kept) {
        if (s.end > s.begin) out.push_back(piece.substr(s.begin, s.end - s.begin));
      }
    }
    if (!last) cur.swap(next);
  }
  if (steps_.empty() && !text.empty()) pieces->push_back(text);
}

}  // namespace r1::tok
