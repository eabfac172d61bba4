#include "tokenizer/tokenizer.h"

#include <deque>

#include "tokenizer/byte_level.h"
#include "tokenizer/nfc.h"
#include "tokenizer/utf8.h"

namespace r1::tok {

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

void Tokenizer::EncodeText(std::string_view text, std::vector<int32_t>* out) const {
  std::string normalized;
  if (nfc_) {
    normalized = NfcNormalize(text);
    text = normalized;
  }
  thread_local std::vector<std::string_view> pieces;
  thread_local std::deque<std::string> arena;  // only holds pieces given a prefix space
  pieces.clear();
  arena.clear();
  pre_tokenizer_.Split(text, &pieces, &arena);
  model_.Encode(pieces, out);
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::string sanitized;
  if (!IsValidUtf8(text)) {
    sanitized = SanitizeUtf8(text);
    text = sanitized;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special_tokens) ids.insert(ids.end(), prefix_ids_.begin(), prefix_ids_.end());
  std::vector<Section> sections;
  added_.Split(text, &sections);
  for (const Section& s : sections) {
    if (s.token_id >= 0) {
      ids.push_back(s.token_id);
    } else {
      EncodeText(s.text, &ids);
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

std::string_view Tokenizer::TokenBytes(int32_t id) const {
  if (const AddedToken* t = added_.FindById(id)) return t->content;
  if (id < 0 || id >= model_.size()) return {};
  return model_.TokenBytes(id);
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  // Bytes of consecutive vocabulary tokens are joined before UTF-8 decoding, so a character split
  // across tokens survives; added tokens are inserted verbatim between such runs.
  std::string out, run;
  for (int32_t id : ids) {
    if (const AddedToken* t = added_.FindById(id)) {
      if (skip_special_tokens && t->special) continue;
      out += SanitizeUtf8(run);
      run.clear();
      out += t->content;
    } else if (id >= 0 && id < model_.size()) {
      run += model_.TokenBytes(id);
    }
  }
  out += SanitizeUtf8(run);
  if (clean_up_) out = CleanUpTokenization(std::move(out));
  return out;
}

std::string Tokenizer::IdToToken(int32_t id) const {
  if (const AddedToken* t = added_.FindById(id)) return t->content;
  if (id < 0 || id >= model_.size()) return {};
  return model_.TokenString(id);
}

int32_t Tokenizer::TokenToId(std::string_view token) const {
  if (const AddedToken* t = added_.FindByContent(token)) return t->id;
  auto raw = ByteLevelToBytes(token);
  return raw ? model_.TokenId(*raw) : -1;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const AddedToken* t = added_.FindById(id);
  return t != nullptr && t->special;
}

void Tokenizer::AddToken(const AddedToken& token) { added_.Add({token}); }

int32_t Tokenizer::vocab_size() const {
  int32_t n = model_.size();
  for (const AddedToken& t : added_.tokens()) n = std::max(n, t.id + 1);
  return n;
}

std::string CleanUpTokenization(std::string text) {
  // = transformers' clean_up_tokenization; each rule is a plain left-to-right replace-all.
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    const std::string f = from, t = to;
    std::string out;
    out.reserve(text.size());
    size_t at = 0;
    for (size_t hit; (hit = text.find(f, at)) != std::string::npos; at = hit + f.size()) {
      out.append(text, at, hit - at);
      out += t;
    }
    out.append(text, at, std::string::npos);
    text.swap(out);
  }
  return text;
}

}  // namespace r1::tok
