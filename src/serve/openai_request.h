// Parsing and validation of OpenAI-style request bodies (chat/completions and completions) into
// plain structs. Every problem is an InvalidArgument naming the field and what was expected; the
// server answers it with a 400 in the OpenAI error format.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "tokenizer/chat_template.h"

namespace r1::serve {

// Defaults follow DeepSeek's advice for R1 (spec §8.3): temperature 0.6, top-p 0.95.
struct GenerationParams {
  std::string model;
  std::optional<int64_t> max_tokens;  // unset: up to the end of the context
  float temperature = 0.6f;
  float top_p = 0.95f;
  int32_t top_k = 0;
  std::optional<uint64_t> seed;       // unset: the server draws one
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  int n = 1;
  bool ignore_eos = false;            // vLLM's extension: run to max_tokens (benchmarks, tests)
};

struct ChatRequest {
  GenerationParams params;
  std::vector<tok::ChatMessage> messages;
};

struct CompletionRequest {
  GenerationParams params;
  std::string prompt;
};

inline constexpr int kMaxChoices = 16;   // n
inline constexpr int kMaxStopStrings = 4;

Result<ChatRequest> ParseChatRequest(const nlohmann::json& body);
Result<CompletionRequest> ParseCompletionRequest(const nlohmann::json& body);

}  // namespace r1::serve
