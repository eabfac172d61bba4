// Finding the final answer in a completion: the content of the last \boxed{...} (braces balanced)
// in the answer part, i.e. after the last "</think>" when there is one.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace r1::rl {

// The text inside the last complete \boxed{...} after the last "</think>" (the whole completion
// when there is no "</think>"), with surrounding whitespace trimmed. Braces inside the box must
// balance: "\boxed{\frac{3}{4}}" gives "\frac{3}{4}"; a box nested in a box is part of the outer
// one's text; an unclosed "\boxed{" is skipped (an earlier complete box still counts). nullopt
// when there is no complete box. Linear in the completion's length.
std::optional<std::string> ExtractAnswer(std::string_view completion);

}  // namespace r1::rl
