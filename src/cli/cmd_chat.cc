// r1 chat MODEL — interactive terminal chat with the R1 template: streamed answers, the reasoning
// dimmed (or hidden), multi-turn (earlier reasoning is not re-fed, as the template prescribes),
// /reset, /system TEXT, /exit; Ctrl-C stops the current answer, not the program.
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "cli/command.h"
#include "core/file.h"
#include "core/log.h"
#include "infer/generate.h"
#include "serve/choice_text.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace r1::cli {
namespace {

volatile std::sig_atomic_t g_interrupt = 0;
void OnInterrupt(int) { g_interrupt = 1; }

struct ChatArgs {
  std::string model;
  std::string system;
  bool hide_think = false;
  float temperature = 0.6f, top_p = 0.95f;
  int32_t top_k = 0;
  uint64_t seed = 0;
  int64_t max_tokens = 0;  // 0: to the end of the context
  bool no_mmap = false;
};

enum class Input { kLine, kInterrupted, kEnd };

// One line from stdin without its newline; Ctrl-C while waiting gives kInterrupted.
Input ReadLine(std::string* line) {
  line->clear();
  char buf[4096];
  for (;;) {
    errno = 0;
    if (!std::fgets(buf, sizeof(buf), stdin)) {
      if (errno == EINTR || g_interrupt) {
        std::clearerr(stdin);
        g_interrupt = 0;
        return Input::kInterrupted;
      }
      return line->empty() ? Input::kEnd : Input::kLine;
    }
    *line += buf;
    if (!line->empty() && line->back() == '\n') {
      line->pop_back();
      return Input::kLine;
    }
  }
}

Status RunChat(const ChatArgs& a) {
  if (!FileExists(a.model + "/tokenizer.json"))
    return InvalidArgument(a.model + ": r1 chat needs a tokenizer.json in the model directory");
  R1_ASSIGN_OR_RETURN(auto model, DeepSeekV3::Load(a.model, io::LoadOptions{!a.no_mmap}));
  R1_ASSIGN_OR_RETURN(auto tokenizer, tok::Tokenizer::Load(a.model));
  tok::RegisterThinkTokens(tokenizer.get());
  const int64_t ctx = model->config().max_position_embeddings;
  const bool tty_in = isatty(0), tty_out = isatty(1);
  const char* dim = tty_out ? "\x1b[2m" : "";
  const char* reset = tty_out ? "\x1b[0m" : "";

  struct sigaction sa = {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns so that Ctrl-C is seen at the prompt
  sigaction(SIGINT, &sa, nullptr);

  std::string system = a.system;
  std::vector<tok::ChatMessage> history;
  if (tty_in) std::fprintf(stderr, "r1 chat — /reset, /system TEXT, /exit; Ctrl-C stops an answer\n");
  for (int turn = 0;; ++turn) {
    if (tty_in) {
      std::printf(">>> ");
      std::fflush(stdout);
    }
    std::string line;
    const Input in = ReadLine(&line);
    if (in == Input::kEnd) break;
    if (in == Input::kInterrupted) {
      std::printf("\n(use /exit or Ctrl-D to quit)\n");
      continue;
    }
    if (line.empty()) continue;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      history.clear();
      std::printf("(conversation cleared)\n");
      continue;
    }
    if (line == "/system" || line.rfind("/system ", 0) == 0) {
      system = line.size() > 8 ? line.substr(8) : "";
      std::printf(system.empty() ? "(system prompt removed)\n" : "(system prompt set)\n");
      continue;
    }
    if (line[0] == '/') {
      std::printf("(commands: /reset, /system TEXT, /exit)\n");
      continue;
    }
    history.push_back({"user", line, false, {}});
    std::vector<tok::ChatMessage> messages;
    if (!system.empty()) messages.push_back({"system", system, false, {}});
    messages.insert(messages.end(), history.begin(), history.end());
    R1_ASSIGN_OR_RETURN(std::string text, tok::RenderChat(*tokenizer, messages, true));
    const std::vector<int32_t> prompt = tokenizer->Encode(text, /*add_special_tokens=*/false);
    const int64_t P = static_cast<int64_t>(prompt.size());
    if (P >= ctx) {
      history.pop_back();
      std::printf("(the conversation has %lld tokens, over the context of %lld: /reset)\n",
                  static_cast<long long>(P), static_cast<long long>(ctx));
      continue;
    }
    GenerateOptions opts;
    opts.max_new_tokens = a.max_tokens > 0 ? std::min(a.max_tokens, ctx - P) : ctx - P;
    opts.sampling = SamplingParams{a.temperature, a.top_p, a.top_k, a.seed + static_cast<uint64_t>(turn)};
    opts.stop_ids.push_back(static_cast<int32_t>(model->config().eos_token_id));
    serve::ChoiceText out(*tokenizer, {}, /*split_reasoning=*/true);
    std::string answer;
    bool in_reasoning = false;
    auto show = [&](const serve::TextDelta& d) {
      if (!d.reasoning.empty() && !a.hide_think) {
        if (!in_reasoning) std::fputs(dim, stdout);
        in_reasoning = true;
        std::fputs(d.reasoning.c_str(), stdout);
      }
      if (!d.content.empty()) {
        if (in_reasoning) std::fputs(reset, stdout);
        in_reasoning = false;
        std::fputs(d.content.c_str(), stdout);
        answer += d.content;
      }
      std::fflush(stdout);
    };
    g_interrupt = 0;
    auto on_token = [&](int32_t id) {
      if (g_interrupt) return false;
      if (id != opts.stop_ids[0]) show(out.Push(id));
      return true;
    };
    auto res = Generate(*model, prompt, opts, on_token);
    show(out.Finish());
    if (in_reasoning) std::fputs(reset, stdout);
    if (!res.ok()) return res.status();
    if (g_interrupt) {
      g_interrupt = 0;
      std::printf("\n[stopped]");
    }
    std::printf("\n");
    history.push_back({"assistant", answer, false, {}});
  }
  return Status::Ok();
}

}  // namespace

void RegisterChatCommands(CLI::App& app) {
  static CommonOptions common;
  static ChatArgs a;
  auto* cmd = AddCommand(app, "chat", "Interactive chat in the terminal (streamed, reasoning dimmed)", &common,
                         [] { return RunChat(a); });
  cmd->add_option("MODEL", a.model, "Hugging Face checkpoint directory with tokenizer.json")->required();
  cmd->add_option("--system", a.system, "System prompt");
  cmd->add_flag("--hide-think", a.hide_think, "Do not show the reasoning");
  cmd->add_option("--temperature", a.temperature, "Sampling temperature (default 0.6; 0 = greedy)")
      ->check(CLI::Range(0.0f, 2.0f));
  cmd->add_option("--top-p", a.top_p, "Nucleus sampling mass (default 0.95)")->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--top-k", a.top_k, "Keep the k most likely tokens (default 0 = all)")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--seed", a.seed, "Sampling seed of the first answer (then +1 per turn; default 0)");
  cmd->add_option("--max-tokens", a.max_tokens, "Longest answer (default: to the end of the context)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_flag("--no-mmap", a.no_mmap, "Read the weights into memory instead of mapping them");
}

}  // namespace r1::cli
