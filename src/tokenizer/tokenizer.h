// A Hugging Face byte-level BPE tokenizer loaded from tokenizer.json (+ tokenizer_config.json):
// added tokens → normalizer (none / NFC) → pre-tokenizer → BPE → post-processor (BOS/EOS), and
// back through the ByteLevel decoder. Exact on DeepSeek-V3/R1, Qwen2/2.5/3 (R1-Distill-Qwen) and
// Llama-3 (R1-Distill-Llama) files; any other component is rejected with a Status naming it.
//
// Thread-safe: Encode/Decode are const and may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/pre_tokenizer.h"

namespace r1::tok {

class Tokenizer {
 public:
  ~Tokenizer();

  // `path` is a directory holding tokenizer.json (and optionally tokenizer_config.json) or the
  // tokenizer.json file itself (tokenizer_config.json is then looked for beside it).
  static Result<std::unique_ptr<Tokenizer>> Load(const std::string& path);
  // From parsed JSON; `config` may be null. `source` names the origin in error messages.
  static Result<std::unique_ptr<Tokenizer>> FromJson(const nlohmann::json& tokenizer,
                                                     const nlohmann::json* config,
                                                     const std::string& source);

  // Text to ids. Added/special-token strings inside `text` are always recognized (as HF does by
  // default); `add_special_tokens` only controls the BOS/EOS the post-processor adds. Invalid
  // UTF-8 is first replaced by U+FFFD per maximal subpart, as the references do.
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens = true) const;

  // Ids to text. Bytes that do not form valid UTF-8 become U+FFFD; ids outside the vocabulary are
  // skipped (as HF does). Applies clean_up_tokenization_spaces when the config asks for it.
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  // The bytes id contributes to the decoded stream (added tokens: their content). Empty for
  // unknown ids.
  std::string_view TokenBytes(int32_t id) const;
  // The token as written in tokenizer.json (byte-level alphabet; added tokens: content).
  std::string IdToToken(int32_t id) const;
  // Added-token content or byte-level vocabulary string to id; -1 if absent.
  int32_t TokenToId(std::string_view token) const;

  bool IsAdded(int32_t id) const { return added_.FindById(id) != nullptr; }
  bool IsSpecial(int32_t id) const;
  // Registers (or overrides) an added token, e.g. R1's <think> on a V3 vocabulary.
  void AddToken(const AddedToken& token);

  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }
  // One past the largest id of the model vocabulary and the added tokens.
  int32_t vocab_size() const;
  bool clean_up_tokenization_spaces() const { return clean_up_; }
  // The config's chat_template string ("" if none).
  const std::string& chat_template() const { return chat_template_; }
  const AddedVocab& added_vocab() const { return added_; }
  const BpeModel& model() const { return model_; }

 private:
  Tokenizer();
  void EncodeText(std::string_view text, std::vector<int32_t>* out) const;

  BpeModel model_;
  PreTokenizer pre_tokenizer_;
  AddedVocab added_;
  bool nfc_ = false;
  bool clean_up_ = false;
  std::vector<int32_t> prefix_ids_;  // added around the sequence when add_special_tokens
  std::vector<int32_t> suffix_ids_;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  std::string bos_token_, eos_token_;
  std::string chat_template_;

  friend class TokenizerLoader;
};

// HF's clean_up_tokenization: drops the space before . ? ! , and English contractions.
std::string CleanUpTokenization(std::string text);

}  // namespace r1::tok
