// The DeepSeek-R1 chat format — also used verbatim by R1-Distill-Qwen and R1-Distill-Llama, whose
// tokenizer_config.json carry the same template with their own ids — rendered natively (no Jinja),
// and the parser that splits a completion into reasoning and answer.
//
// Rendering follows the shipped template (spec §8.2): BOS, the system prompts joined by "\n\n",
// then "<｜User｜>"+text, "<｜Assistant｜>"+answer+"<｜end▁of▁sentence｜>" with earlier reasoning
// cut off (only the text after the last "</think>" is kept), the V3 tool-call/tool-output blocks
// with their quirks, and the generation prompt "<｜Assistant｜><think>\n".
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace r1::tok {

struct ToolCall {
  std::string type = "function";
  std::string name;
  std::string arguments;  // JSON text, inserted verbatim
};

struct ChatMessage {
  std::string role;  // system, user, assistant, tool
  std::string content;
  bool content_is_null = false;  // an assistant turn that only calls tools
  std::vector<ToolCall> tool_calls;
};

// OpenAI-style messages: [{"role": …, "content": … | null, "tool_calls": [{"type", "function":
// {"name", "arguments"}}]}]. `arguments` may be a string or an object (serialized compactly).
Result<std::vector<ChatMessage>> ParseChatMessages(const nlohmann::json& messages);

// Renders `messages` in the R1 format with `bos_token` (e.g. tokenizer.bos_token()).
Result<std::string> RenderR1Chat(const std::vector<ChatMessage>& messages,
                                 const std::string& bos_token, bool add_generation_prompt);

// Renders with `tokenizer`'s BOS after checking that its vocabulary has the R1 chat tokens;
// a tokenizer of another chat format is an Unimplemented error naming what is missing.
Result<std::string> RenderChat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                               bool add_generation_prompt);

// R1 uses placeholder ids 128798/128799 of the V3 vocabulary for "<think>"/"</think>"; adds them
// when the vocabulary lacks them (and the ids are free placeholders or unused), as R1's file does.
void RegisterThinkTokens(Tokenizer* tokenizer);

// A completion split at its first "</think>" (text up to an optional leading "<think>" is dropped,
// as vLLM's deepseek_r1 parser does). Without "</think>" the model was cut off while thinking:
// everything is reasoning and `reasoning_finished` is false.
struct ReasoningSplit {
  std::string reasoning_content;
  std::string content;
  bool reasoning_finished = false;
};
ReasoningSplit ParseReasoning(std::string_view completion);

}  // namespace r1::tok
