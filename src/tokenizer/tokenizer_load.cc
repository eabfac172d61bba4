// Tokenizer::Load / FromJson: reading tokenizer.json and tokenizer_config.json into a Tokenizer,
// with one clear Status for every unsupported or malformed field.
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/log.h"
#include "tokenizer/tokenizer.h"

namespace r1::tok {

using json = nlohmann::json;

class TokenizerLoader {
 public:
  static Status Normalizer(const json& j, Tokenizer* t);
  static Status AddedTokens(const json& j, Tokenizer* t);
  static Status PostProcessor(const json& j, Tokenizer* t);
  static Status Decoder(const json& j);
  static Status Config(const json* config, Tokenizer* t);
};

namespace {

Result<json> ParseJsonFile(const std::string& path) {
  R1_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return DataLoss(path + ": not valid JSON");
  return j;
}

// A config token is "<s>" or {"__type": "AddedToken", "content": "<s>", …}.
std::string ConfigToken(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return "";
}

}  // namespace

Status TokenizerLoader::Normalizer(const json& j, Tokenizer* t) {
  if (j.is_null()) return Status::Ok();
  const std::string type = j.value("type", std::string());
  if (type == "NFC") {
    t->nfc_ = true;
    return Status::Ok();
  }
  if (type == "Sequence") {
    auto list = j.find("normalizers");
    if (list == j.end() || !list->is_array()) {
      return InvalidArgument("normalizer Sequence: missing \"normalizers\" array");
    }
    for (const json& child : *list) R1_RETURN_IF_ERROR(Normalizer(child, t));
    return Status::Ok();
  }
  return Unimplemented("normalizer \"" + type + "\" is unsupported (supported: none, NFC)");
}

Status TokenizerLoader::AddedTokens(const json& j, Tokenizer* t) {
  if (j.is_null()) return Status::Ok();
  if (!j.is_array()) return InvalidArgument("added_tokens: expected an array");
  std::vector<AddedToken> tokens;
  for (const json& e : j) {
    if (!e.is_object() || !e.contains("id") || !e["id"].is_number_integer() ||
        !e.contains("content") || !e["content"].is_string()) {
      return InvalidArgument("added_tokens: every entry needs an integer \"id\" and a \"content\"");
    }
    AddedToken a;
    a.id = e["id"].get<int32_t>();
    a.content = e["content"].get<std::string>();
    a.special = e.value("special", false);
    a.lstrip = e.value("lstrip", false);
    a.rstrip = e.value("rstrip", false);
    a.single_word = e.value("single_word", false);
    a.normalized = e.value("normalized", !a.special);
    if (a.id < 0) return InvalidArgument("added_tokens: negative id for " + a.content);
    tokens.push_back(std::move(a));
  }
  t->added_.Add(tokens);
  return Status::Ok();
}

Status TokenizerLoader::PostProcessor(const json& j, Tokenizer* t) {
  if (j.is_null()) return Status::Ok();
  const std::string type = j.value("type", std::string());
  if (type == "ByteLevel") return Status::Ok();  // offsets only; ids unchanged
  if (type == "Sequence") {
    auto list = j.find("processors");
    if (list == j.end() || !list->is_array()) {
      return InvalidArgument("post_processor Sequence: missing \"processors\" array");
    }
    for (const json& child : *list) R1_RETURN_IF_ERROR(PostProcessor(child, t));
    return Status::Ok();
  }
  if (type == "TemplateProcessing") {
    auto single = j.find("single");
    if (single == j.end() || !single->is_array()) {
      return InvalidArgument("post_processor TemplateProcessing: missing \"single\"");
    }
    const json specials = j.value("special_tokens", json::object());
    bool seen_sequence = false;
    for (const json& item : *single) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = item["SpecialToken"].value("id", std::string());
        auto sp = specials.find(name);
        if (sp == specials.end() || !sp->contains("ids")) {
          return InvalidArgument("post_processor TemplateProcessing: special token \"" + name +
                                 "\" is not in special_tokens");
        }
        for (const json& id : (*sp)["ids"]) {
          (seen_sequence ? t->suffix_ids_ : t->prefix_ids_).push_back(id.get<int32_t>());
        }
      } else {
        return InvalidArgument("post_processor TemplateProcessing: unknown item " + item.dump());
      }
    }
    return Status::Ok();
  }
  return Unimplemented("post_processor \"" + type +
                       "\" is unsupported (supported: ByteLevel, TemplateProcessing, Sequence)");
}

Status TokenizerLoader::Decoder(const json& j) {
  const std::string type = j.is_object() ? j.value("type", std::string()) : "null";
  if (type == "ByteLevel") return Status::Ok();
  if (type == "Sequence" && j.contains("decoders") && j["decoders"].is_array()) {
    for (const json& child : j["decoders"]) R1_RETURN_IF_ERROR(Decoder(child));
    return Status::Ok();
  }
  return Unimplemented("decoder \"" + type + "\" is unsupported (supported: ByteLevel)");
}

Status TokenizerLoader::Config(const json* config, Tokenizer* t) {
  if (config == nullptr) {
    t->clean_up_ = false;
    return Status::Ok();
  }
  const json& c = *config;
  t->bos_token_ = ConfigToken(c, "bos_token");
  t->eos_token_ = ConfigToken(c, "eos_token");
  if (!t->bos_token_.empty()) t->bos_id_ = t->TokenToId(t->bos_token_);
  if (!t->eos_token_.empty()) t->eos_id_ = t->TokenToId(t->eos_token_);
  // transformers defaults clean_up_tokenization_spaces to true when the key is absent.
  t->clean_up_ = c.value("clean_up_tokenization_spaces", true);
  if (c.contains("chat_template") && c["chat_template"].is_string()) {
    t->chat_template_ = c["chat_template"].get<std::string>();
  }
  // LlamaTokenizerFast replaces the post-processor by "[bos] $A [eos]" from add_bos_token
  // (default true) and add_eos_token (default false): how DeepSeek-V3/R1 get their BOS.
  const std::string cls = c.value("tokenizer_class", std::string());
  if (cls == "LlamaTokenizerFast" || cls == "CodeLlamaTokenizerFast" ||
      cls == "GemmaTokenizerFast") {
    t->prefix_ids_.clear();
    t->suffix_ids_.clear();
    if (c.value("add_bos_token", true) && t->bos_id_ >= 0) t->prefix_ids_.push_back(t->bos_id_);
    if (c.value("add_eos_token", false) && t->eos_id_ >= 0) t->suffix_ids_.push_back(t->eos_id_);
  }
  return Status::Ok();
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(const json& tj, const json* config,
                                                       const std::string& source) {
  auto fail = [&](const Status& s) { return s.WithContext(source); };
  if (!tj.is_object()) return fail(InvalidArgument("expected a JSON object"));
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  auto model = BpeModel::FromJson(tj.value("model", json()));
  if (!model.ok()) return fail(model.status());
  t->model_ = std::move(model).value();
  auto pre = PreTokenizer::FromJson(tj.value("pre_tokenizer", json()));
  if (!pre.ok()) return fail(pre.status());
  t->pre_tokenizer_ = std::move(pre).value();
  if (!t->pre_tokenizer_.byte_level()) {
    return fail(Unimplemented(
        "pre_tokenizer without a final ByteLevel step is unsupported (only byte-level BPE)"));
  }
  for (Status s : {TokenizerLoader::Normalizer(tj.value("normalizer", json()), t.get()),
                   TokenizerLoader::AddedTokens(tj.value("added_tokens", json()), t.get()),
                   TokenizerLoader::PostProcessor(tj.value("post_processor", json()), t.get()),
                   TokenizerLoader::Decoder(tj.value("decoder", json()))}) {
    if (!s.ok()) return fail(s);
  }
  if (Status s = TokenizerLoader::Config(config, t.get()); !s.ok()) return fail(s);
  return t;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  std::string dir, file;
  if (IsDirectory(path)) {
    dir = path;
    file = path + "/tokenizer.json";
  } else {
    file = path;
    const size_t slash = path.find_last_of('/');
    dir = slash == std::string::npos ? "." : path.substr(0, slash);
  }
  if (!FileExists(file)) return NotFound(file + ": no such tokenizer file");
  R1_ASSIGN_OR_RETURN(json tj, ParseJsonFile(file));
  const std::string config_path = dir + "/tokenizer_config.json";
  json config;
  const bool has_config = FileExists(config_path);
  if (has_config) {
    R1_ASSIGN_OR_RETURN(config, ParseJsonFile(config_path));
  }
  return FromJson(tj, has_config ? &config : nullptr, file);
}

}  // namespace r1::tok
