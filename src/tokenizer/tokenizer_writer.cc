// Writing a trained tokenizer as Hugging Face files: tokenizer.json in DeepSeek-V3's layout
// (leading sentence tokens, byte alphabet, merges as [a, b] pairs, trailing chat/think/FIM/tool
// tokens) and a tokenizer_config.json with the R1 chat template, loadable by transformers,
// the JavaScript port and our own loader.
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/log.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/byte_level.h"

namespace r1::tok {
namespace {

using ojson = nlohmann::ordered_json;

// DeepSeek-V3's shipped chat template with R1's two changes (spec §8.2): earlier assistant turns
// keep only the text after their last "</think>"; the generation prompt ends with "<think>\n".
constexpr const char* kR1ChatTemplate =
    R"jinja({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + '

' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '
' + '```json' + '
' + tool['function']['arguments'] + '
' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'
' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '
' + '```json' + '
' + tool['function']['arguments'] + '
' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'
<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\n'}}{% endif %})jinja";

}  // namespace

Status WriteTrainedTokenizer(const TrainedBpe& bpe, const std::string& dir) {
  if (!IsDirectory(dir) && ::mkdir(dir.c_str(), 0755) != 0) {
    return IoError(dir + ": cannot create directory");
  }
  const auto& lead = R1LeadingSpecialTokens();
  const auto& trail = R1TrailingSpecialTokens();
  // Token strings in the byte-level alphabet; specials are written as themselves.
  std::vector<std::string> names(bpe.tokens.size());
  for (size_t id = 0; id < bpe.tokens.size(); ++id) {
    const bool special = id < lead.size() || static_cast<int32_t>(id) >= bpe.first_trailing_special;
    names[id] = special ? bpe.tokens[id] : BytesToByteLevel(bpe.tokens[id]);
  }
  ojson added = ojson::array();
  auto add = [&](int32_t id, const SpecialTokenSpec& s) {
    added.push_back({{"id", id},
                     {"content", s.content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", !s.special},
                     {"special", s.special}});
  };
  for (size_t k = 0; k < lead.size(); ++k) add(static_cast<int32_t>(k), lead[k]);
  for (size_t k = 0; k < trail.size(); ++k)
    add(bpe.first_trailing_special + static_cast<int32_t>(k), trail[k]);
  ojson vocab = ojson::object();
  for (int32_t id = 0; id < bpe.first_trailing_special; ++id) vocab[names[id]] = id;
  ojson merges = ojson::array();
  for (const auto& [a, b] : bpe.merges) merges.push_back({names[a], names[b]});

  const std::string bos = lead[0].content, eos = lead[1].content;
  ojson tj = {{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added},
              {"normalizer", {{"type", "Sequence"}, {"normalizers", ojson::array()}}},
              {"pre_tokenizer", ojson::parse(TrainerPreTokenizerJson(bpe.digits))},
              {"post_processor",
               {{"type", "TemplateProcessing"},
                {"single",
                 {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                {"pair",
                 {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                  {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
                  {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
                {"special_tokens", {{bos, {{"id", bos}, {"ids", {0}}, {"tokens", {bos}}}}}}}},
              {"decoder",
               {{"type", "ByteLevel"},
                {"add_prefix_space", true},
                {"trim_offsets", true},
                {"use_regex", true}}},
              {"model",
               {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", merges}}}};
  ojson config = {{"add_bos_token", true},
                  {"add_eos_token", false},
                  {"bos_token", bos},
                  {"eos_token", eos},
                  {"pad_token", lead[2].content},
                  {"unk_token", nullptr},
                  {"clean_up_tokenization_spaces", false},
                  {"legacy", true},
                  {"model_max_length", 131072},
                  {"tokenizer_class", "LlamaTokenizerFast"},
                  {"chat_template", kR1ChatTemplate}};
  R1_RETURN_IF_ERROR(WriteFileAtomic(dir + "/tokenizer.json", tj.dump(1) + "\n"));
  return WriteFileAtomic(dir + "/tokenizer_config.json", config.dump(2) + "\n");
}

}  // namespace r1::tok
