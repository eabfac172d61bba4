#include "serve/openai_request.h"

#include <nlohmann/json.hpp>

namespace r1::serve {
namespace {

using json = nlohmann::json;

const char* TypeName(const json& v) { return v.type_name(); }

Status Expect(bool ok, const std::string& field, const std::string& what, const json& got) {
  if (ok) return Status::Ok();
  std::string msg = field + ": expected " + what + ", got " + TypeName(got);
  if (got.is_primitive() && !got.is_string()) {
    msg += ' ';
    msg += got.dump();
  }
  return InvalidArgument(msg);
}

// The fields both endpoints share.
Status ParseParams(const json& body, GenerationParams* p) {
  for (const auto& [key, v] : body.items()) {
    if (v.is_null()) continue;  // OpenAI clients send explicit nulls for unset options
    if (key == "model") {
      R1_RETURN_IF_ERROR(Expect(v.is_string(), key, "a string", v));
      p->model = v.get<std::string>();
    } else if (key == "max_tokens" || key == "max_completion_tokens") {
      R1_RETURN_IF_ERROR(Expect(v.is_number_integer(), key, "an integer", v));
      const int64_t m = v.get<int64_t>();
      if (m < 1) return InvalidArgument(key + ": must be at least 1, got " + std::to_string(m));
      p->max_tokens = m;
    } else if (key == "temperature") {
      R1_RETURN_IF_ERROR(Expect(v.is_number(), key, "a number", v));
      const double t = v.get<double>();
      if (!(t >= 0 && t <= 2)) return InvalidArgument("temperature: must be in [0, 2], got " + v.dump());
      p->temperature = static_cast<float>(t);
    } else if (key == "top_p") {
      R1_RETURN_IF_ERROR(Expect(v.is_number(), key, "a number", v));
      const double t = v.get<double>();
      if (!(t > 0 && t <= 1)) return InvalidArgument("top_p: must be in (0, 1], got " + v.dump());
      p->top_p = static_cast<float>(t);
    } else if (key == "top_k") {
      R1_RETURN_IF_ERROR(Expect(v.is_number_integer(), key, "an integer", v));
      const int64_t k = v.get<int64_t>();
      if (k < 0 || k > (1 << 30)) return InvalidArgument("top_k: must be >= 0, got " + v.dump());
      p->top_k = static_cast<int32_t>(k);
    } else if (key == "seed") {
      R1_RETURN_IF_ERROR(Expect(v.is_number_integer(), key, "an integer", v));
      p->seed = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
    } else if (key == "stop") {
      if (v.is_string()) {
        p->stop = {v.get<std::string>()};
      } else {
        R1_RETURN_IF_ERROR(Expect(v.is_array(), key, "a string or an array of strings", v));
        if (v.size() > kMaxStopStrings)
          return InvalidArgument("stop: at most " + std::to_string(kMaxStopStrings) + " strings");
        p->stop.clear();
        for (const json& s : v) {
          R1_RETURN_IF_ERROR(Expect(s.is_string(), "stop[]", "a string", s));
          p->stop.push_back(s.get<std::string>());
        }
      }
    } else if (key == "ignore_eos") {
      R1_RETURN_IF_ERROR(Expect(v.is_boolean(), key, "a boolean", v));
      p->ignore_eos = v.get<bool>();
    } else if (key == "stream") {
      R1_RETURN_IF_ERROR(Expect(v.is_boolean(), key, "a boolean", v));
      p->stream = v.get<bool>();
    } else if (key == "stream_options") {
      R1_RETURN_IF_ERROR(Expect(v.is_object(), key, "an object", v));
      if (auto u = v.find("include_usage"); u != v.end() && !u->is_null()) {
        R1_RETURN_IF_ERROR(Expect(u->is_boolean(), "stream_options.include_usage", "a boolean", *u));
        p->include_usage = u->get<bool>();
      }
    } else if (key == "n") {
      R1_RETURN_IF_ERROR(Expect(v.is_number_integer(), key, "an integer", v));
      const int64_t n = v.get<int64_t>();
      if (n < 1 || n > kMaxChoices)
        return InvalidArgument("n: must be in [1, " + std::to_string(kMaxChoices) + "], got " + v.dump());
      p->n = static_cast<int>(n);
    }
    // Other OpenAI fields (user, logit_bias, presence_penalty, …) are accepted and ignored.
  }
  return Status::Ok();
}

Status ExpectObject(const json& body) {
  if (!body.is_object()) return InvalidArgument(std::string("the request body must be a JSON object, got ") + TypeName(body));
  return Status::Ok();
}

}  // namespace

Result<ChatRequest> ParseChatRequest(const json& body) {
  R1_RETURN_IF_ERROR(ExpectObject(body));
  ChatRequest r;
  R1_RETURN_IF_ERROR(ParseParams(body, &r.params));
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return InvalidArgument("messages: required");
  R1_RETURN_IF_ERROR(Expect(it->is_array(), "messages", "an array", *it));
  if (it->empty()) return InvalidArgument("messages: must not be empty");
  // Content given as an array of text parts ([{"type": "text", "text": …}]) is joined.
  json messages = *it;
  for (size_t i = 0; i < messages.size(); ++i) {
    json& m = messages[i];
    if (!m.is_object()) continue;  // ParseChatMessages names the problem
    auto c = m.find("content");
    if (c == m.end() || !c->is_array()) continue;
    std::string text;
    for (const json& part : *c) {
      if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
        return InvalidArgument("messages[" + std::to_string(i) +
                               "].content: parts must be {\"type\": \"text\", \"text\": string}");
      text += part["text"].get<std::string>();
    }
    *c = text;
  }
  R1_ASSIGN_OR_RETURN(r.messages, tok::ParseChatMessages(messages));
  return r;
}

Result<CompletionRequest> ParseCompletionRequest(const json& body) {
  R1_RETURN_IF_ERROR(ExpectObject(body));
  CompletionRequest r;
  R1_RETURN_IF_ERROR(ParseParams(body, &r.params));
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return InvalidArgument("prompt: required");
  if (it->is_array() && it->size() == 1 && (*it)[0].is_string()) {
    r.prompt = (*it)[0].get<std::string>();
  } else {
    R1_RETURN_IF_ERROR(Expect(it->is_string(), "prompt", "a string (or an array of one string)", *it));
    r.prompt = it->get<std::string>();
  }
  if (r.prompt.empty()) return InvalidArgument("prompt: must not be empty");
  return r;
}

}  // namespace r1::serve
