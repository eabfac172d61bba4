#include "serve/server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "core/log.h"
#include "serve/choice_text.h"
#include "serve/metrics.h"
#include "serve/openai_request.h"
#include "serve/web_page.h"
#include "tokenizer/chat_template.h"

namespace r1::serve {
namespace {

using json = nlohmann::json;

constexpr int kPollMs = 100;          // how often a waiting handler wakes up
constexpr double kKeepAliveSec = 1.0;  // a byte to every waiting client this often

// {"error": {...}} as OpenAI sends it.
std::string ErrorJson(const std::string& message, const std::string& type, const std::string& code) {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", code.empty() ? json(nullptr) : json(code)}};
  return json{{"error", e}}.dump();
}

void SetError(httplib::Response& res, int status, const std::string& message, const std::string& code = "") {
  const std::string type = status == 401   ? "authentication_error"
                           : status >= 500 ? "server_error"
                                           : "invalid_request_error";
  res.status = status;
  res.set_content(ErrorJson(message, type, code), "application/json");
}

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A generation in flight: the n choices of one API call.
struct Job {
  bool chat = true;
  GenerationParams params;
  int64_t prompt_tokens = 0;
  std::string id;
  int64_t created = 0;
  std::shared_ptr<EventQueue> events = std::make_shared<EventQueue>();
  std::vector<std::shared_ptr<RequestHandle>> handles;
  void CancelAll() {
    for (auto& h : handles) h->Cancel();
  }
};

const char* FinishName(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return "length";
    case FinishReason::kError: return "error";
    default: return "stop";  // EOS, a stop string, or the server shutting down
  }
}

}  // namespace

struct Server::Impl {
  Impl(const DeepSeekV3& m, const tok::Tokenizer& t, const ServerOptions& o)
      : model(m), tokenizer(t), opts(o), engine(m, o.engine) {}

  const DeepSeekV3& model;
  const tok::Tokenizer& tokenizer;
  ServerOptions opts;
  Engine engine;
  httplib::Server http;
  HttpCounters counters;
  std::vector<int32_t> stop_ids;
  std::atomic<uint64_t> next_id{1};
  std::mt19937_64 seed_rng{std::random_device{}()};
  std::mutex seed_mu;
  int port = -1;
  std::atomic<bool> stopping{false};  // handlers give up their requests

  void Routes();
  void Generate(const httplib::Request& req, httplib::Response& res, bool chat);
  // Runs inside the chunked content provider until every choice has finished.
  bool Produce(Job& job, httplib::DataSink& sink);
  uint64_t DrawSeed() {
    std::lock_guard<std::mutex> lk(seed_mu);
    return seed_rng() >> 1;
  }
};

void Server::Impl::Routes() {
  http.set_payload_max_length(opts.max_body_bytes);
  // httplib keeps a worker on each open connection between its requests: a short keep-alive
  // returns idle clients' workers to the pool (and bounds how long Stop waits for them).
  http.set_keep_alive_timeout(2);
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (opts.api_key.empty() || req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + opts.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    SetError(res, 401, "Incorrect or missing API key: send \"Authorization: Bearer <key>\"", "invalid_api_key");
    return httplib::Server::HandlerResponse::Handled;
  });
  // httplib answers oversize bodies and unknown paths itself, with an empty body: fill it in.
  http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413)
      SetError(res, 413, "The request body exceeds the limit of " + std::to_string(opts.max_body_bytes) + " bytes",
               "request_too_large");
    else if (res.status == 404)
      SetError(res, 404, "Unknown path " + req.path, "not_found");
    else if (res.status == 405)
      SetError(res, 405, "Method " + req.method + " not allowed on " + req.path);
    else
      SetError(res, res.status, "HTTP error " + std::to_string(res.status));
  });
  http.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SetError(res, 500, "internal error: " + what);
  });
  http.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    if (res.status >= 500) counters.status_5xx++;
    else if (res.status >= 400) counters.status_4xx++;
    else counters.status_2xx++;
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    counters.other++;
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    counters.other++;
    res.set_content(FormatMetrics(engine.Stats(), counters), "text/plain; version=0.0.4");
  });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    counters.other++;
    json m = {{"id", opts.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "r1"},
              {"max_model_len", opts.engine.ctx}};
    res.set_content(json{{"object", "list"}, {"data", json::array({m})}}.dump(), "application/json");
  });
  http.Get("/", [this](const httplib::Request&, httplib::Response& res) {
    counters.other++;
    res.set_content(std::string(WebPage()), "text/html; charset=utf-8");
  });
  http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    counters.chat++;
    Generate(req, res, /*chat=*/true);
  });
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    counters.completions++;
    Generate(req, res, /*chat=*/false);
  });
}

void Server::Impl::Generate(const httplib::Request& req, httplib::Response& res, bool chat) {
  const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return SetError(res, 400, "The request body is not valid JSON");
  auto job = std::make_shared<Job>();
  job->chat = chat;
  std::vector<int32_t> prompt;
  if (chat) {
    auto r = ParseChatRequest(body);
    if (!r.ok()) return SetError(res, 400, r.status().message());
    auto text = tok::RenderChat(tokenizer, r->messages, /*add_generation_prompt=*/true);
    if (!text.ok()) return SetError(res, 400, text.status().message());
    prompt = tokenizer.Encode(*text, /*add_special_tokens=*/false);  // the template has the BOS
    job->params = std::move(r->params);
  } else {
    auto r = ParseCompletionRequest(body);
    if (!r.ok()) return SetError(res, 400, r.status().message());
    prompt = tokenizer.Encode(r->prompt, /*add_special_tokens=*/true);
    job->params = std::move(r->params);
  }
  const GenerationParams& p = job->params;
  const int64_t P = static_cast<int64_t>(prompt.size()), ctx = opts.engine.ctx;
  if (P >= ctx)
    return SetError(res, 400,
                    "The prompt has " + std::to_string(P) + " tokens; this server's context holds " +
                        std::to_string(ctx) + " (prompt and completion together)",
                    "context_length_exceeded");
  if (p.max_tokens && P + *p.max_tokens > ctx)
    return SetError(res, 400,
                    "max_tokens " + std::to_string(*p.max_tokens) + " + the prompt's " + std::to_string(P) +
                        " tokens exceed the context of " + std::to_string(ctx),
                    "context_length_exceeded");
  job->prompt_tokens = P;
  job->id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id++);
  job->created = static_cast<int64_t>(UnixSeconds());
  const uint64_t seed = p.seed ? *p.seed : DrawSeed();
  for (int i = 0; i < p.n; ++i) {
    EngineRequest er;
    er.prompt = prompt;
    er.max_new_tokens = p.max_tokens ? *p.max_tokens : ctx - P;
    er.sampling = SamplingParams{p.temperature, p.top_p, p.top_k, seed + static_cast<uint64_t>(i)};
    if (!p.ignore_eos) er.stop_ids = stop_ids;
    er.events = job->events;
    er.index = i;
    bool full = false;
    auto h = engine.Submit(std::move(er), &full);
    if (!h.ok()) {
      job->CancelAll();
      if (full) return SetError(res, 503, "The server is overloaded: " + h.status().message(), "overloaded");
      return SetError(res, 400, h.status().message());
    }
    job->handles.push_back(*h);
  }
  const char* type = p.stream ? "text/event-stream" : "application/json";
  if (p.stream) res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      type,
      [this, job](size_t, httplib::DataSink& sink) {
        const bool ok = Produce(*job, sink);
        if (!ok) {
          job->CancelAll();
          counters.disconnects++;
        }
        return ok;
      },
      [job](bool) { job->CancelAll(); });  // also when the connection ends early
}

bool Server::Impl::Produce(Job& job, httplib::DataSink& sink) {
  const GenerationParams& p = job.params;
  const int n = p.n;
  std::vector<ChoiceText> texts;
  for (int i = 0; i < n; ++i) texts.emplace_back(tokenizer, p.stop, /*split_reasoning=*/job.chat);
  std::vector<std::string> reasoning(n), content(n);
  std::vector<FinishReason> finish(n, FinishReason::kNone);
  std::vector<Status> errors(n);
  auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
  const json base = {{"id", job.id},
                     {"object", job.chat ? (p.stream ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
                     {"created", job.created},
                     {"model", opts.model_name}};
  auto chunk = [&](int i, const TextDelta* d, const char* finish_reason, bool first) {
    json c = base;
    json choice = {{"index", i}, {"finish_reason", finish_reason ? json(finish_reason) : json(nullptr)}};
    if (job.chat) {
      json delta = json::object();
      if (first) delta["role"] = "assistant";
      if (d && !d->reasoning.empty()) delta["reasoning_content"] = d->reasoning;
      if (d && !d->content.empty()) delta["content"] = d->content;
      if (first) delta["content"] = "";
      choice["delta"] = delta;
    } else {
      choice["text"] = d ? d->reasoning + d->content : "";
      choice["logprobs"] = nullptr;
    }
    c["choices"] = json::array({choice});
    return "data: " + c.dump() + "\n\n";
  };
  auto usage = [&]() {
    int64_t completion = 0, reasoning_tokens = 0;
    for (const ChoiceText& t : texts) {
      completion += t.tokens();
      reasoning_tokens += t.reasoning_tokens();
    }
    json u = {{"prompt_tokens", job.prompt_tokens},
              {"completion_tokens", completion},
              {"total_tokens", job.prompt_tokens + completion}};
    if (job.chat) u["completion_tokens_details"] = {{"reasoning_tokens", reasoning_tokens}};
    return u;
  };
  if (p.stream && job.chat)
    for (int i = 0; i < n; ++i)
      if (!write(chunk(i, nullptr, nullptr, /*first=*/true))) return false;

  int done = 0;
  Timer since_write;
  while (done < n) {
    if (stopping.load()) return false;
    std::vector<EngineEvent> events = job.events->Pop(kPollMs);
    if (events.empty()) {
      if (since_write.Seconds() >= kKeepAliveSec) {
        // An SSE comment, or whitespace before the JSON body: both ignored by clients, and the
        // write fails once the client has gone.
        if (!write(p.stream ? ": keep-alive\n\n" : " ")) return false;
        since_write.Reset();
      }
      continue;
    }
    for (EngineEvent& e : events) {
      const int i = e.index;
      if (finish[i] != FinishReason::kNone) continue;  // ended by a stop string already
      TextDelta d;
      for (int32_t id : e.tokens) {
        TextDelta t = texts[i].Push(id);
        d.reasoning += t.reasoning;
        d.content += t.content;
        if (texts[i].stopped()) break;
      }
      FinishReason f = e.finish;
      if (texts[i].stopped()) {
        job.handles[i]->Cancel();
        f = FinishReason::kStop;
      }
      if (f != FinishReason::kNone) {
        TextDelta t = texts[i].Finish();
        d.reasoning += t.reasoning;
        d.content += t.content;
        finish[i] = f;
        errors[i] = e.error;
        ++done;
      }
      reasoning[i] += d.reasoning;
      content[i] += d.content;
      if (!p.stream) continue;
      if (!d.empty()) {
        if (!write(chunk(i, &d, nullptr, false))) return false;
        since_write.Reset();
      }
      if (f == FinishReason::kError) {
        if (!write("data: " + ErrorJson("generation failed: " + e.error.message(), "server_error", "") + "\n\n"))
          return false;
      } else if (f != FinishReason::kNone) {
        if (!write(chunk(i, nullptr, FinishName(f), false))) return false;
      }
    }
  }
  if (p.stream) {
    if (p.include_usage) {
      json c = base;
      c["choices"] = json::array();
      c["usage"] = usage();
      if (!write("data: " + c.dump() + "\n\n")) return false;
    }
    if (!write("data: [DONE]\n\n")) return false;
    sink.done();
    return true;
  }
  json out = base;
  out["choices"] = json::array();
  for (int i = 0; i < n; ++i) {
    if (finish[i] == FinishReason::kError) {
      if (!write(ErrorJson("generation failed: " + errors[i].message(), "server_error", ""))) return false;
      sink.done();
      return true;
    }
    json choice = {{"index", i}, {"finish_reason", FinishName(finish[i])}, {"logprobs", nullptr}};
    if (job.chat) {
      choice["message"] = {{"role", "assistant"},
                           {"content", content[i]},
                           {"reasoning_content", reasoning[i]}};
    } else {
      choice["text"] = reasoning[i] + content[i];
    }
    out["choices"].push_back(choice);
  }
  out["usage"] = usage();
  if (!write(out.dump())) return false;
  sink.done();
  return true;
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Stop(); }

Result<std::unique_ptr<Server>> Server::Create(const DeepSeekV3& model, const tok::Tokenizer& tokenizer,
                                               const ServerOptions& opts) {
  const ModelConfig& c = model.config();
  if (opts.engine.ctx < 2 || opts.engine.ctx > c.max_position_embeddings)
    return InvalidArgument("--ctx " + std::to_string(opts.engine.ctx) + " must be in [2, " +
                           std::to_string(c.max_position_embeddings) + "] (the model's max_position_embeddings)");
  if (opts.engine.max_batch < 1) return InvalidArgument("--max-batch must be at least 1");
  if (tokenizer.vocab_size() > c.vocab_size)
    return InvalidArgument("the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                           " tokens but the model's vocab_size is " + std::to_string(c.vocab_size));
  // The chat template needs the R1 chat tokens; find out now rather than at the first request.
  tok::ChatMessage hello{"user", "hi", false, {}};
  R1_RETURN_IF_ERROR(tok::RenderChat(tokenizer, {hello}, true).status().WithContext("chat template"));
  auto impl = std::make_unique<Impl>(model, tokenizer, opts);
  impl->stop_ids.push_back(static_cast<int32_t>(c.eos_token_id));
  if (tokenizer.eos_id() >= 0 && tokenizer.eos_id() != c.eos_token_id) impl->stop_ids.push_back(tokenizer.eos_id());
  // One worker per request that can be in flight (running or queued) plus room for /health and
  // refusals, so that a full batch never starves the other endpoints.
  const size_t workers = static_cast<size_t>(opts.engine.max_batch + opts.engine.max_queue + 16);
  impl->http.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  impl->Routes();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::Bind() {
  // A client that hangs up mid-answer must not kill the process: writes to its socket then fail
  // with EPIPE instead of raising SIGPIPE (httplib sends without MSG_NOSIGNAL).
  std::signal(SIGPIPE, SIG_IGN);
  if (impl_->opts.port == 0) {
    impl_->port = impl_->http.bind_to_any_port(impl_->opts.host);
  } else if (impl_->http.bind_to_port(impl_->opts.host, impl_->opts.port)) {
    impl_->port = impl_->opts.port;
  }
  if (impl_->port <= 0)
    return IoError("cannot listen on " + impl_->opts.host + ":" + std::to_string(impl_->opts.port) +
                   " (address in use, or not a local address)");
  return Status::Ok();
}

int Server::port() const { return impl_->port; }

Status Server::Run() {
  if (impl_->port <= 0) R1_RETURN_IF_ERROR(Bind());
  if (!impl_->http.listen_after_bind()) return IoError("the HTTP listener stopped with an error");
  return Status::Ok();
}

void Server::Stop() {
  impl_->stopping.store(true);
  impl_->http.stop();
}

const Engine& Server::engine() const { return impl_->engine; }

}  // namespace r1::serve
