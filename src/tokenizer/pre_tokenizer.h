// Pre-tokenizers: how normalized text is cut into pieces before BPE (= tokenizers'
// pre_tokenizers/{split,byte_level,digits,sequence}.rs). Supported: Sequence, Split (Regex or
// String pattern; Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous; invert),
// ByteLevel (add_prefix_space, use_regex) as the last step, Digits. Anything else is rejected at
// load time with a Status naming it.
//
// Pieces stay raw UTF-8 bytes: the byte-level BPE works on bytes directly, so the ByteLevel step's
// byte→char mapping is implicit and only its optional splitting and prefix space are applied.
#pragma once

#include <deque>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/regex.h"

namespace r1::tok {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// The split behaviour applied to matches (`is_match`) and the gaps between them, as tokenizers'
// NormalizedString::split does. `segments` alternate freely and cover the input; the result are
// the kept spans.
void ApplySplitBehavior(SplitBehavior behavior, const std::vector<std::pair<Span, bool>>& segments,
                        std::vector<Span>* out);

class PreTokenizer {
 public:
  PreTokenizer();  // no steps: the whole text is one piece
  ~PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;

  // `j` is the "pre_tokenizer" value of tokenizer.json (null: no splitting at all).
  static Result<PreTokenizer> FromJson(const nlohmann::json& j);

  // Appends the pieces of `text` to `pieces`. Pieces point into `text` or, when a prefix space
  // is added, into strings kept in `arena` (which must outlive the pieces).
  void Split(std::string_view text, std::vector<std::string_view>* pieces,
             std::deque<std::string>* arena) const;

  // True when the pipeline ends with a ByteLevel step (required for byte-level BPE).
  bool byte_level() const { return byte_level_; }

 private:
  struct Step;
  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace r1::tok
