// The byte-level BPE model (= tokenizers' models/bpe): vocabulary, ranked merges, and the merge
// loop. Works on raw bytes: vocabulary strings are mapped back through the byte-level alphabet at
// load time, so a piece's initial symbols are simply its bytes.
//
// Merging applies the lowest-ranked adjacent pair first, the leftmost on ties (as HF and the
// JavaScript port do). Short pieces use a linear scan, long ones a heap over a linked list, so a
// megabyte-long piece takes O(n log n). Results for pieces up to kMaxCachedPiece bytes are cached.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace r1::tok {

class BpeModel {
 public:
  static constexpr size_t kMaxCachedPiece = 256;

  BpeModel();
  ~BpeModel();
  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;

  // `j` is tokenizer.json's "model". Requires type BPE, no dropout, byte-level vocabulary; takes
  // merges as "a b" strings or ["a", "b"] pairs; honours ignore_merges.
  static Result<BpeModel> FromJson(const nlohmann::json& j);

  // Appends the ids of one pre-tokenized piece (raw bytes, non-empty).
  void Encode(std::string_view piece, std::vector<int32_t>* out) const;

  // Id of the token whose bytes are `bytes`, or -1.
  int32_t TokenId(std::string_view bytes) const;
  // Raw bytes of token `id` (0 <= id < size()); empty for holes in the id space.
  const std::string& TokenBytes(int32_t id) const { return bytes_[id]; }
  // Vocabulary string of `id` as stored in tokenizer.json (byte-level alphabet).
  std::string TokenString(int32_t id) const;
  // One past the largest id.
  int32_t size() const { return static_cast<int32_t>(bytes_.size()); }
  size_t num_merges() const { return num_merges_; }

 private:
  struct MergeTable;
  struct Cache;
  void MergeSymbols(std::vector<int32_t>* symbols) const;
  void MergeSymbolsHeap(std::vector<int32_t>* symbols) const;

  std::vector<std::string> bytes_;  // id -> raw bytes
  // Heterogeneous lookup: find(string_view) without building a std::string.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> ids_;  // bytes -> id
  std::array<int32_t, 256> byte_ids_{};  // single bytes -> id (-1 if absent)
  std::unique_ptr<MergeTable> merges_;
  size_t num_merges_ = 0;
  bool ignore_merges_ = false;
  std::unique_ptr<Cache> cache_;
};

}  // namespace r1::tok
