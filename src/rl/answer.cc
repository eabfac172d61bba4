#include "rl/answer.h"

#include <vector>

#include "rl/rational.h"

namespace r1::rl {

std::optional<std::string> ExtractAnswer(std::string_view completion) {
  constexpr std::string_view kClose = "</think>";
  constexpr std::string_view kBox = "\\boxed{";
  std::string_view text = completion;
  if (const size_t close = text.rfind(kClose); close != std::string_view::npos)
    text = text.substr(close + kClose.size());

  // One pass with a stack of open braces, each remembering whether it opened a box. Matched
  // boxes nest or are disjoint, so the last outermost complete box is the one that closes last.
  struct Open {
    size_t content_start;
    bool is_box;
  };
  std::vector<Open> stack;
  std::optional<std::string_view> last;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '{') {
      const bool is_box = i + 1 >= kBox.size() && text.substr(i + 1 - kBox.size(), kBox.size()) == kBox;
      stack.push_back({i + 1, is_box});
    } else if (text[i] == '}' && !stack.empty()) {
      const Open o = stack.back();
      stack.pop_back();
      if (o.is_box) last = text.substr(o.content_start, i - o.content_start);
    }
  }
  if (!last) return std::nullopt;
  return std::string(TrimSpace(*last));
}

}  // namespace r1::rl
