// The byte-level BPE model (= tokenizers' models/bpe): vocabulary, ranked merges, and the merge
// loop. Works on raw bytes: vocabulary strings are mapped back through the byte-level alphabet at
// load time, so a piece's initial symbols are simply its bytes.
//
// Merging applies the lowest-ranked adjacent pair first, the leftmost on ties (as HF and the
// JavaScript port do). Symbols are token ids and a merge is one lookup in a table keyed by the id
// pair. Short pieces keep the rank of every adjacent pair in an array and rescan it (no heap, no
// allocation); long ones file their pairs in buckets by rank over a linked list (MergeLong), so a
// megabyte-long piece takes about O(n log n) at worst. Results for pieces up to kMaxCachedPiece
// bytes are memoized in a per-thread cache (PieceCache): the common path is one hash and one
// probe, with no lock.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/flat_hash.h"

namespace r1::tok {

class PieceCache;

class BpeModel {
 public:
  static constexpr size_t kMaxCachedPiece = 256;

  BpeModel();

  // `j` is tokenizer.json's "model". Requires type BPE, no dropout, byte-level vocabulary; takes
  // merges as "a b" strings or ["a", "b"] pairs; honours ignore_merges.
  static Result<BpeModel> FromJson(const nlohmann::json& j);

  // Appends the ids of one pre-tokenized piece (raw bytes, non-empty).
  void Encode(std::string_view piece, std::vector<int32_t>* out) const;
  // Appends the ids of each piece in turn; the same as calling Encode on each, but cheaper.
  void Encode(const std::vector<std::string_view>& pieces, std::vector<int32_t>* out) const;

  // Id of the token whose bytes are `bytes`, or -1.
  int32_t TokenId(std::string_view bytes) const { return ids_.Find(bytes, bytes_); }
  // Raw bytes of token `id` (0 <= id < size()); empty for holes in the id space.
  const std::string& TokenBytes(int32_t id) const { return bytes_[id]; }
  // Vocabulary string of `id` as stored in tokenizer.json (byte-level alphabet).
  std::string TokenString(int32_t id) const;
  // One past the largest id.
  int32_t size() const { return static_cast<int32_t>(bytes_.size()); }
  size_t num_merges() const { return num_merges_; }

 private:
  // Pieces longer than this (in symbols) are merged by MergeLong.
  static constexpr size_t kMaxLinearMerge = 128;

  void EncodePiece(std::string_view piece, PieceCache& cache, std::vector<int32_t>* out) const;
  // Encodes one piece (at least 2 bytes) without consulting the cache.
  void EncodeUncached(std::string_view piece, std::vector<int32_t>* out) const;
  // Merges `n` symbols in place; returns the number left.
  size_t MergeLinear(int32_t* symbols, size_t n) const;
  size_t MergeLong(int32_t* symbols, size_t n) const;

  std::vector<std::string> bytes_;       // id -> raw bytes
  BytesIndex ids_;                       // raw bytes -> id (byte-level tokens only)
  std::array<int32_t, 256> byte_ids_{};  // single bytes -> id (-1 if absent)
  MergeTable merges_;
  size_t num_merges_ = 0;
  bool ignore_merges_ = false;
  uint64_t serial_ = 0;  // names this model's PieceCache; unique per process
};

}  // namespace r1::tok
