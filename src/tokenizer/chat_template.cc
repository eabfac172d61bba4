#include "tokenizer/chat_template.h"

#include <nlohmann/json.hpp>

#include "core/log.h"

namespace r1::tok {

using json = nlohmann::json;

namespace {

constexpr const char* kUser = "<｜User｜>";
constexpr const char* kAssistant = "<｜Assistant｜>";
constexpr const char* kEos = "<｜end▁of▁sentence｜>";
constexpr const char* kThink = "<think>";
constexpr const char* kEndThink = "</think>";

}  // namespace

Result<std::vector<ChatMessage>> ParseChatMessages(const json& messages) {
  if (!messages.is_array()) return InvalidArgument("messages: expected a JSON array");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = StrFormat("messages[%zu]", i);
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return InvalidArgument(where + ": expected an object with a string \"role\"");
    }
    ChatMessage msg;
    msg.role = m["role"].get<std::string>();
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" &&
        msg.role != "tool") {
      return InvalidArgument(where + ": role \"" + msg.role +
                             "\" is not one of system, user, assistant, tool");
    }
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      msg.content_is_null = true;
    } else if (content->is_string()) {
      msg.content = content->get<std::string>();
    } else {
      return InvalidArgument(where + ".content: expected a string or null");
    }
    if (auto calls = m.find("tool_calls"); calls != m.end() && !calls->is_null()) {
      if (!calls->is_array()) return InvalidArgument(where + ".tool_calls: expected an array");
      for (const json& c : *calls) {
        ToolCall call;
        call.type = c.value("type", std::string("function"));
        const json fn = c.value("function", json::object());
        call.name = fn.value("name", std::string());
        const json args = fn.value("arguments", json(""));
        call.arguments = args.is_string() ? args.get<std::string>() : args.dump();
        msg.tool_calls.push_back(std::move(call));
      }
    }
    if (msg.content_is_null && (msg.role != "assistant" || msg.tool_calls.empty())) {
      return InvalidArgument(where +
                             ": content may be null only for an assistant turn with "
                             "tool_calls");
    }
    out.push_back(std::move(msg));
  }
  return out;
}

Result<std::string> RenderR1Chat(const std::vector<ChatMessage>& messages,
                                 const std::string& bos_token, bool add_generation_prompt) {
  std::string out = bos_token;
  bool first_system = true;
  for (const ChatMessage& m : messages) {
    if (m.role != "system") continue;
    if (!first_system) out += "\n\n";
    out += m.content;
    first_system = false;
  }
  // Template state; `tool_called` is never reset (the shipped template's namespace flag).
  bool tool_called = false, in_tool = false, first_output = true;
  auto call_text = [](const ToolCall& c) {
    return c.type + "<｜tool▁sep｜>" + c.name + "\n```json\n" + c.arguments +
           "\n```<｜tool▁call▁end｜>";
  };
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      in_tool = false;
      out += kUser + m.content;
    } else if (m.role == "assistant" && m.content_is_null) {
      in_tool = false;
      for (const ToolCall& c : m.tool_calls) {
        if (!tool_called) {
          out += std::string(kAssistant) + "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>" +
                 call_text(c);
          tool_called = true;
        } else {
          out += "\n<｜tool▁call▁begin｜>" + call_text(c) + "<｜tool▁calls▁end｜>" + kEos;
        }
      }
    } else if (m.role == "assistant") {
      if (in_tool) {
        out += "<｜tool▁outputs▁end｜>" + m.content + kEos;
        in_tool = false;
      } else {
        std::string_view content = m.content;
        if (const size_t at = content.rfind(kEndThink); at != std::string_view::npos) {
          content.remove_prefix(at + std::string_view(kEndThink).size());
        }
        out += kAssistant;
        out += content;
        out += kEos;
      }
    } else if (m.role == "tool") {
      in_tool = true;
      if (first_output) {
        out +=
            "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" + m.content + "<｜tool▁output▁end｜>";
        first_output = false;
      } else {
        out += "\n<｜tool▁output▁begin｜>" + m.content + "<｜tool▁output▁end｜>";
      }
    }
  }
  if (in_tool) out += "<｜tool▁outputs▁end｜>";
  if (add_generation_prompt && !in_tool) out += std::string(kAssistant) + kThink + "\n";
  return out;
}

Result<std::string> RenderChat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                               bool add_generation_prompt) {
  for (const char* t : {kUser, kAssistant, kEos}) {
    if (tokenizer.TokenToId(t) < 0) {
      return Unimplemented(std::string("chat template: the tokenizer has no ") + t +
                           " token; only the DeepSeek-R1 chat format (R1, R1-Distill-Qwen, "
                           "R1-Distill-Llama) is supported");
    }
  }
  return RenderR1Chat(messages, tokenizer.bos_token(), add_generation_prompt);
}

void RegisterThinkTokens(Tokenizer* tokenizer) {
  const std::pair<const char*, int32_t> kTokens[] = {{kThink, 128798}, {kEndThink, 128799}};
  for (const auto& [content, id] : kTokens) {
    if (tokenizer->TokenToId(content) >= 0) continue;
    // Only over a V3 placeholder (or an id nothing uses): never shadow a real token.
    const std::string current = tokenizer->IdToToken(id);
    if (!current.empty() && current.rfind("<｜place▁holder▁no▁", 0) != 0) continue;
    AddedToken t;
    t.content = content;
    t.id = id;
    t.special = false;  // R1's exact flags are unverified (spec §8.1); false keeps them in decodes
    t.normalized = true;
    tokenizer->AddToken(t);
  }
}

ReasoningSplit ParseReasoning(std::string_view completion) {
  ReasoningSplit r;
  if (const size_t at = completion.find(kThink); at != std::string_view::npos) {
    completion.remove_prefix(at + std::string_view(kThink).size());
  }
  const size_t end = completion.find(kEndThink);
  if (end == std::string_view::npos) {
    r.reasoning_content = std::string(completion);
    return r;
  }
  r.reasoning_content = std::string(completion.substr(0, end));
  r.content = std::string(completion.substr(end + std::string_view(kEndThink).size()));
  r.reasoning_finished = true;
  return r;
}

}  // namespace r1::tok
