// `r1 serve`: an OpenAI-compatible HTTP server over the continuous-batching engine.
//
//   POST /v1/chat/completions  messages → R1 chat template → engine; answers carry DeepSeek's
//                              `reasoning_content` beside `content`; SSE streaming with `stream`
//   POST /v1/completions       raw prompt text
//   GET  /v1/models            the one served model
//   GET  /health               {"status": "ok"} while the process serves
//   GET  /metrics              Prometheus text (requests, tokens, tokens/s, queue, batch, KV use)
//   GET  /                     the chat page compiled into the binary
//
// Errors use the OpenAI format {"error": {"message", "type", "param", "code"}}: 400 for bad JSON,
// wrong types, bad values, prompts or max_tokens beyond the context; 401 for a missing or wrong
// key (with --api-key, on /v1/*); 404 unknown path; 413 body over the limit; 503 queue full.
//
// A client that disconnects is noticed at its next write (streamed tokens, or the keep-alive byte
// sent every second while it waits) and its request is cancelled, which frees its slot.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/status.h"
#include "infer/engine.h"
#include "model/deepseek_v3.h"
#include "tokenizer/tokenizer.h"

namespace r1::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port (see Server::port)
  std::string api_key;               // empty: no authentication
  std::string model_name = "r1";     // the id /v1/models reports and responses carry
  EngineOptions engine;
  size_t max_body_bytes = 1 << 20;   // larger bodies get 413
};

class Server {
 public:
  // The model and the tokenizer must outlive the server. Fails if the tokenizer cannot render
  // the R1 chat template.
  static Result<std::unique_ptr<Server>> Create(const DeepSeekV3& model, const tok::Tokenizer& tokenizer,
                                                const ServerOptions& opts);
  ~Server();

  // Binds the listening socket (IoError naming host:port if it cannot).
  Status Bind();
  int port() const;
  // Serves until Stop(); returns after the listener has closed.
  Status Run();
  // Thread-safe; Run returns soon after.
  void Stop();

  const Engine& engine() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace r1::serve
