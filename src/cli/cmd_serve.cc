// r1 serve MODEL — the OpenAI-compatible HTTP server (see src/serve/server.h and docs/serving.md).
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/command.h"
#include "core/file.h"
#include "core/log.h"
#include "serve/server.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace r1::cli {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
void OnStopSignal(int) { g_stop_signal = 1; }

struct ServeArgs {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  std::string name;
  int64_t max_batch = 16;
  int64_t ctx = 0;        // 0: min(max_position_embeddings, 4096)
  int64_t max_queue = -1; // -1: 4 x max_batch
  size_t max_body = 1 << 20;
  bool no_mmap = false;
};

std::string BaseName(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Status RunServe(const ServeArgs& a, const CommonOptions& common) {
  if (!FileExists(a.model + "/tokenizer.json"))
    return InvalidArgument(a.model + ": r1 serve needs a tokenizer.json in the model directory (the chat template "
                           "and the text of answers come from it)");
  Timer t;
  R1_ASSIGN_OR_RETURN(auto model, DeepSeekV3::Load(a.model, io::LoadOptions{!a.no_mmap}));
  R1_ASSIGN_OR_RETURN(auto tokenizer, tok::Tokenizer::Load(a.model));
  tok::RegisterThinkTokens(tokenizer.get());
  LogInfo("loaded %s in %.2f s", a.model.c_str(), t.Seconds());

  serve::ServerOptions opts;
  opts.host = a.host;
  opts.port = a.port;
  opts.api_key = a.api_key;
  opts.model_name = a.name.empty() ? BaseName(a.model) : a.name;
  opts.engine.max_batch = a.max_batch;
  opts.engine.ctx = a.ctx > 0 ? a.ctx : std::min<int64_t>(model->config().max_position_embeddings, 4096);
  opts.engine.max_queue = a.max_queue >= 0 ? a.max_queue : 4 * a.max_batch;
  opts.max_body_bytes = a.max_body;
  R1_ASSIGN_OR_RETURN(auto server, serve::Server::Create(*model, *tokenizer, opts));
  R1_RETURN_IF_ERROR(server->Bind());
  const std::string url = "http://" + a.host + ":" + std::to_string(server->port());
  LogInfo("serving %s on %s (max batch %lld, context %lld, queue %lld, latent KV cache %.1f MiB)%s",
          opts.model_name.c_str(), url.c_str(), static_cast<long long>(opts.engine.max_batch),
          static_cast<long long>(opts.engine.ctx), static_cast<long long>(opts.engine.max_queue),
          server->engine().Stats().kv_bytes / 1048576.0, a.api_key.empty() ? "" : ", API key required");
  if (common.json) {
    std::printf("%s\n", nlohmann::json{{"url", url}, {"port", server->port()}, {"model", opts.model_name}}.dump().c_str());
  } else {
    std::printf("r1 serve: listening on %s\n", url.c_str());
  }
  std::fflush(stdout);

  // Ctrl-C / SIGTERM: stop accepting, cancel what runs, return.
  struct sigaction sa = {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done.load() && !g_stop_signal) usleep(100 * 1000);
    if (g_stop_signal) {
      LogInfo("stopping");
      server->Stop();
    }
  });
  const Status st = server->Run();
  done.store(true);
  watcher.join();
  return st;
}

}  // namespace

void RegisterServeCommands(CLI::App& app) {
  static CommonOptions common;
  static ServeArgs a;
  auto* cmd = AddCommand(app, "serve", "OpenAI-compatible HTTP server with continuous batching and a chat page",
                         &common, [] { return RunServe(a, common); });
  cmd->add_option("MODEL", a.model, "Hugging Face checkpoint directory with tokenizer.json")->required();
  cmd->add_option("--host", a.host, "Address to bind (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", a.port, "Port (default 8080; 0 = any free port)")->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", a.api_key, "Require \"Authorization: Bearer KEY\" on /v1/*");
  cmd->add_option("--name", a.name, "Model id reported by /v1/models (default: the directory name)");
  cmd->add_option("--max-batch", a.max_batch, "Sequences decoded together (default 16)")->check(CLI::Range(1, 1024));
  cmd->add_option("--ctx", a.ctx, "Positions per sequence, prompt + answer (default: the model's, at most 4096)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 24));
  cmd->add_option("--max-queue", a.max_queue, "Requests that may wait for a slot before 503 (default 4 x max-batch)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--max-body", a.max_body, "Largest request body in bytes (default 1 MiB; larger get 413)")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  cmd->add_flag("--no-mmap", a.no_mmap, "Read the weights into memory instead of mapping them");
}

}  // namespace r1::cli
