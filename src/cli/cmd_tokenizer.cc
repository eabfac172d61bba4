// r1 tokenize | chat-template | tokenizer train — the tokenizer commands (docs/tokenizer.md).
//
//   r1 tokenize --tokenizer PATH (--text S | --jsonl FILE) [--no-special]
//       one JSON array of ids per input (a JSONL input line is one JSON string)
//   r1 tokenize --tokenizer PATH --decode (--text '[ids]' | --jsonl FILE) [--skip-special]
//       one JSON string per input (a JSONL input line is one JSON array of ids)
//   r1 chat-template --tokenizer PATH --messages FILE.json [--add-generation-prompt]
//   r1 tokenizer train --corpus FILE... --vocab-size N --out DIR [--digits single|group3]
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/file.h"
#include "core/log.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace r1::cli {
namespace {

using json = nlohmann::json;

struct TokenizeArgs {
  std::string tokenizer;
  std::string text;
  std::string jsonl;
  bool no_special = false;
  bool decode = false;
  bool skip_special = false;
  CLI::Option* text_opt = nullptr;
  CLI::Option* jsonl_opt = nullptr;
};

// Parses one input: a JSON string (encode) or a JSON array of ids (decode).
Status ParseInput(const std::string& line, bool decode, const std::string& where, json* out) {
  *out = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded()) return InvalidArgument(where + ": not valid JSON");
  if (!decode && !out->is_string()) return InvalidArgument(where + ": expected a JSON string");
  if (decode) {
    if (!out->is_array()) return InvalidArgument(where + ": expected a JSON array of ids");
    for (const json& id : *out) {
      if (!id.is_number_integer()) return InvalidArgument(where + ": ids must be integers");
    }
  }
  return Status::Ok();
}

std::string Process(const tok::Tokenizer& t, const TokenizeArgs& a, const json& in) {
  if (a.decode) {
    return json(t.Decode(in.get<std::vector<int32_t>>(), a.skip_special))
        .dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return json(t.Encode(in.get<std::string>(), !a.no_special)).dump();
}

Status RunTokenize(const TokenizeArgs& a, const CommonOptions& common) {
  if ((a.text_opt->count() > 0) == (a.jsonl_opt->count() > 0)) {
    return UsageError("tokenize: give exactly one of --text and --jsonl");
  }
  R1_ASSIGN_OR_RETURN(auto t, tok::Tokenizer::Load(a.tokenizer));
  if (a.jsonl.empty()) {
    // --text is raw text (encode) or a JSON array (decode); "" encodes to [] or [bos].
    if (a.decode) {
      json in;
      R1_RETURN_IF_ERROR(ParseInput(a.text, true, "--text", &in));
      std::printf("%s\n", Process(*t, a, in).c_str());
      return Status::Ok();
    }
    const std::vector<int32_t> ids = t->Encode(a.text, !a.no_special);
    if (common.json) {
      json tokens = json::array();
      for (int32_t id : ids) tokens.push_back(t->IdToToken(id));
      std::printf("%s\n", json({{"ids", ids}, {"tokens", tokens}, {"n_tokens", ids.size()}})
                              .dump(-1, ' ', false, json::error_handler_t::replace)
                              .c_str());
    } else {
      std::printf("%s\n", json(ids).dump().c_str());
    }
    return Status::Ok();
  }
  R1_ASSIGN_OR_RETURN(std::string data, ReadFileToString(a.jsonl));
  std::vector<std::string> lines;
  for (size_t at = 0; at < data.size();) {
    size_t nl = data.find('\n', at);
    if (nl == std::string::npos) nl = data.size();
    lines.push_back(data.substr(at, nl - at));
    at = nl + 1;
  }
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::vector<json> inputs(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    R1_RETURN_IF_ERROR(
        ParseInput(lines[i], a.decode, StrFormat("%s:%zu", a.jsonl.c_str(), i + 1), &inputs[i]));
  }
  std::vector<std::string> outputs(lines.size());
  size_t text_bytes = 0;  // bytes of the texts (encode) or of the id lines (decode)
  for (size_t i = 0; i < lines.size(); ++i) {
    text_bytes += a.decode ? lines[i].size() : inputs[i].get_ref<const std::string&>().size();
  }
  Timer timer;
#pragma omp parallel for schedule(dynamic, 16)
  for (size_t i = 0; i < lines.size(); ++i) outputs[i] = Process(*t, a, inputs[i]);
  for (const std::string& o : outputs) std::printf("%s\n", o.c_str());
  const double sec = timer.Seconds();
  LogInfo("%s %zu lines (%zu bytes) in %.3f s: %.2f MB/s", a.decode ? "decoded" : "encoded",
          lines.size(), text_bytes, sec, text_bytes / 1e6 / std::max(sec, 1e-9));
  return Status::Ok();
}

struct ChatArgs {
  std::string tokenizer;
  std::string messages;
  bool add_generation_prompt = false;
};

Status RunChatTemplate(const ChatArgs& a, const CommonOptions& common) {
  R1_ASSIGN_OR_RETURN(auto t, tok::Tokenizer::Load(a.tokenizer));
  tok::RegisterThinkTokens(t.get());
  R1_ASSIGN_OR_RETURN(std::string text, ReadFileToString(a.messages));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return InvalidArgument(a.messages + ": not valid JSON");
  // Either a bare array of messages or {"messages": [...]} as in a chat-completions request.
  const json& list = j.is_object() && j.contains("messages") ? j["messages"] : j;
  auto messages = tok::ParseChatMessages(list);
  if (!messages.ok()) return messages.status().WithContext(a.messages);
  R1_ASSIGN_OR_RETURN(std::string prompt, tok::RenderChat(*t, *messages, a.add_generation_prompt));
  if (common.json) {
    const std::vector<int32_t> ids = t->Encode(prompt, /*add_special_tokens=*/false);
    std::printf("%s\n", json({{"prompt", prompt}, {"ids", ids}}).dump().c_str());
  } else {
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::printf("\n");
  }
  return Status::Ok();
}

struct TrainArgs {
  std::vector<std::string> corpus;
  int vocab_size = 0;
  std::string out;
  std::string digits = "group3";
};

Status RunTrain(const TrainArgs& a, const CommonOptions& common) {
  tok::BpeTrainerOptions opt;
  opt.vocab_size = a.vocab_size;
  opt.digits = a.digits == "single" ? tok::DigitSplit::kSingle : tok::DigitSplit::kGroup3;
  Timer timer;
  R1_ASSIGN_OR_RETURN(auto trainer, tok::BpeTrainer::Create(opt));
  for (const std::string& f : a.corpus) R1_RETURN_IF_ERROR(trainer->AddFile(f));
  R1_ASSIGN_OR_RETURN(tok::TrainedBpe bpe, trainer->Train());
  R1_RETURN_IF_ERROR(tok::WriteTrainedTokenizer(bpe, a.out));
  const double s = timer.Seconds();
  const double mb = bpe.corpus_bytes / 1e6;
  if (common.json) {
    std::printf("%s\n", json({{"out", a.out},
                              {"vocab_size", bpe.tokens.size()},
                              {"merges", bpe.merges.size()},
                              {"corpus_bytes", bpe.corpus_bytes},
                              {"distinct_words", bpe.words},
                              {"seconds", s},
                              {"mb_per_s", mb / s}})
                            .dump()
                            .c_str());
  } else {
    LogInfo("wrote %s/tokenizer.json: %zu tokens, %zu merges from %.1f MB in %.1f s (%.2f MB/s)",
            a.out.c_str(), bpe.tokens.size(), bpe.merges.size(), mb, s, mb / s);
  }
  return Status::Ok();
}

}  // namespace

void RegisterTokenizerCommands(CLI::App& app) {
  {
    static CommonOptions common;
    static TokenizeArgs a;
    CLI::App* cmd = AddCommand(app, "tokenize", "Text to token ids, or ids to text with --decode",
                               &common, [] { return RunTokenize(a, common); });
    cmd->add_option("--tokenizer", a.tokenizer, "Directory with tokenizer.json, or the file")
        ->required();
    a.text_opt =
        cmd->add_option("--text", a.text, "Text to encode (with --decode: a JSON array of ids)");
    a.jsonl_opt =
        cmd->add_option("--jsonl", a.jsonl,
                        "One JSON string per line (with --decode: one JSON array of ids per line)");
    cmd->add_flag("--no-special", a.no_special,
                  "Add no BOS/EOS (special-token strings in the text are still recognized)");
    cmd->add_flag("--decode", a.decode, "Decode ids to text");
    cmd->add_flag("--skip-special", a.skip_special, "With --decode: drop special tokens");
  }
  {
    static CommonOptions common;
    static ChatArgs a;
    CLI::App* cmd = AddCommand(app, "chat-template", "Render chat messages as an R1 prompt",
                               &common, [] { return RunChatTemplate(a, common); });
    cmd->add_option("--tokenizer", a.tokenizer, "Directory with tokenizer.json, or the file")
        ->required();
    cmd->add_option("--messages", a.messages, "JSON file: [{\"role\", \"content\"}, …]")
        ->required();
    cmd->add_flag("--add-generation-prompt", a.add_generation_prompt,
                  "End with the assistant prompt \"<｜Assistant｜><think>\\n\"");
  }
  {
    CLI::App* group = app.add_subcommand("tokenizer", "Tokenizer tools (train)");
    group->require_subcommand(1);
    static CommonOptions common;
    static TrainArgs a;
    CLI::App* cmd = AddCommand(*group, "train", "Train a byte-level BPE tokenizer (R1 layout)",
                               &common, [] { return RunTrain(a, common); });
    cmd->add_option("--corpus", a.corpus, "Text files to learn from")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--vocab-size", a.vocab_size, "Total tokens, special tokens included")
        ->required();
    cmd->add_option("--out", a.out, "Output directory")->required();
    cmd->add_option("--digits", a.digits, "Number splitting: group3 (as DeepSeek-V3) or single")
        ->check(CLI::IsMember({"single", "group3"}));
  }
}

}  // namespace r1::cli
