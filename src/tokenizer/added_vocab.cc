#include "tokenizer/added_vocab.h"

#include <algorithm>
#include <cstring>

#include "tokenizer/utf8.h"

namespace r1::tok {
namespace {

// = Rust's char::is_whitespace (the White_Space property), used by lstrip/rstrip.
bool IsWhiteSpace(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Word characters for single_word: ASCII alphanumerics and '_' plus every non-ASCII letter or
// digit approximated as any non-space, non-punctuation code point above U+007F.
bool IsWordChar(int32_t c) {
  if (c < 0x80)
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
  return !IsWhiteSpace(c) && !(c >= 0x2000 && c <= 0x206F) && !(c >= 0x3000 && c <= 0x303F);
}

int32_t LastChar(std::string_view s) {
  if (s.empty()) return -1;
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  size_t p = i;
  return DecodeUtf8(s, &p);
}

int32_t FirstChar(std::string_view s) {
  if (s.empty()) return -1;
  size_t p = 0;
  return DecodeUtf8(s, &p);
}

}  // namespace

void AddedVocab::Add(const std::vector<AddedToken>& tokens) {
  for (const AddedToken& token : tokens) {
    auto by_id = by_id_.find(token.id);
    auto by_content = by_content_.find(token.content);
    if (by_id != by_id_.end()) {
      tokens_[by_id->second] = token;
    } else if (by_content != by_content_.end()) {
      tokens_[by_content->second] = token;
    } else {
      by_id_[token.id] = static_cast<int>(tokens_.size());
      by_content_[token.content] = static_cast<int>(tokens_.size());
      tokens_.push_back(token);
    }
  }
  Rebuild();
}

void AddedVocab::Rebuild() {
  by_id_.clear();
  by_content_.clear();
  trie_.assign(1, Node{});
  std::fill(std::begin(first_byte_), std::end(first_byte_), false);
  only_first_byte_ = kNoFirstByte;
  for (int k = 0; k < static_cast<int>(tokens_.size()); ++k) {
    const AddedToken& t = tokens_[k];
    by_id_[t.id] = k;
    by_content_[t.content] = k;
    if (t.content.empty()) continue;
    first_byte_[static_cast<uint8_t>(t.content[0])] = true;
    const int first = static_cast<uint8_t>(t.content[0]);
    if (only_first_byte_ != first) only_first_byte_ = only_first_byte_ == kNoFirstByte ? first : -1;
    int node = 0;
    for (unsigned char c : t.content) {
      auto& next = trie_[node].next;
      auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, -1));
      if (it != next.end() && it->first == c) {
        node = it->second;
      } else {
        const int child = static_cast<int>(trie_.size());
        next.insert(it, {c, child});
        trie_.push_back(Node{});
        node = child;
      }
    }
    trie_[node].token = k;
  }
}

size_t AddedVocab::LongestAt(std::string_view text, size_t pos, int* index) const {
  size_t best = 0;
  int node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& next = trie_[node].next;
    const auto c = static_cast<uint8_t>(text[i]);
    auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, -1));
    if (it == next.end() || it->first != c) break;
    node = it->second;
    if (trie_[node].token >= 0) {
      best = i + 1 - pos;
      *index = trie_[node].token;
    }
  }
  return best;
}

void AddedVocab::Split(std::string_view text, std::vector<Section>* out) const {
  out->clear();
  size_t start = 0;  // start of the pending text section
  for (size_t i = 0; i < text.size();) {
    if (!first_byte_[static_cast<uint8_t>(text[i])]) {
      // When all tokens start with the same byte (as "<|…|>" and "<｜…｜>" tokens do), memchr
      // finds the next candidate.
      if (only_first_byte_ == kNoFirstByte) break;  // no tokens
      if (only_first_byte_ < 0) {
        ++i;
        continue;
      }
      const void* hit = std::memchr(text.data() + i, only_first_byte_, text.size() - i);
      if (hit == nullptr) break;
      i = static_cast<const char*>(hit) - text.data();
    }
    int index = -1;
    const size_t len = LongestAt(text, i, &index);
    if (len == 0) {
      ++i;
      continue;
    }
    const AddedToken& t = tokens_[index];
    size_t begin = i, end = i + len;
    if (t.single_word) {
      const int32_t before = LastChar(text.substr(0, begin));
      const int32_t after = FirstChar(text.substr(end));
      if ((before >= 0 && IsWordChar(before)) || (after >= 0 && IsWordChar(after))) {
        ++i;
        continue;
      }
    }
    if (t.lstrip) {
      while (begin > start) {
        size_t p = begin - 1;
        while (p > start && (static_cast<uint8_t>(text[p]) & 0xC0) == 0x80) --p;
        size_t q = p;
        if (!IsWhiteSpace(DecodeUtf8(text, &q))) break;
        begin = p;
      }
    }
    if (t.rstrip) {
      while (end < text.size()) {
        size_t q = end;
        if (!IsWhiteSpace(DecodeUtf8(text, &q))) break;
        end = q;
      }
    }
    if (begin > start) out->push_back({text.substr(start, begin - start), -1});
    out->push_back({text.substr(i, len), t.id});
    start = i = end;
  }
  if (start < text.size()) out->push_back({text.substr(start), -1});
}

const AddedToken* AddedVocab::FindById(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocab::FindByContent(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace r1::tok
