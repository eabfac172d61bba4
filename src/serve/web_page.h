// The chat page served at `/`: one self-contained HTML file (no external resources, so it works
// offline), compiled into the binary. It streams /v1/chat/completions with fetch + SSE, shows the
// reasoning in a collapsible block above the answer, and exposes the sampling parameters.
#pragma once

#include <string_view>

namespace r1::serve {

std::string_view WebPage();

}  // namespace r1::serve
