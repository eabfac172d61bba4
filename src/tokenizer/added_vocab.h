// Added tokens (tokenizer.json "added_tokens"): matched in the raw text before normalization and
// BPE, leftmost-longest (= tokenizers' added_vocabulary.rs find_matches, and what the JavaScript
// port does), with their lstrip / rstrip / single_word flags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace r1::tok {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// A run of text between added tokens, or one added token (`token_id` >= 0).
struct Section {
  std::string_view text;
  int32_t token_id = -1;
};

class AddedVocab {
 public:
  // Adds or replaces (same content or same id) tokens.
  void Add(const std::vector<AddedToken>& tokens);

  // Cuts `text` into sections. Whitespace swallowed by lstrip/rstrip is dropped.
  void Split(std::string_view text, std::vector<Section>* out) const;

  const AddedToken* FindById(int32_t id) const;
  const AddedToken* FindByContent(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // Length of the longest token that starts at text[pos] (0 if none) and its index.
  size_t LongestAt(std::string_view text, size_t pos, int* index) const;
  void Rebuild();

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, int> by_id_;
  std::unordered_map<std::string, int> by_content_;
  // Byte trie over the contents: node -> sorted (byte, child); terminal token index per node.
  struct Node {
    std::vector<std::pair<uint8_t, int>> next;
    int token = -1;
  };
  std::vector<Node> trie_;
  bool first_byte_[256] = {};
  // The first byte shared by every token; -1 if they differ, kNoFirstByte if there are none.
  static constexpr int kNoFirstByte = 256;
  int only_first_byte_ = kNoFirstByte;
};

}  // namespace r1::tok
