// Training data: token streams cut into windows, and chats packed into rows.
//
// Inputs (--data):
//   *.ids   whitespace-separated token ids, one stream
//   *.bin   little-endian uint32 token ids, one stream
//   *.jsonl one JSON object per line: {"text": …} documents (pretraining; each tokenized with the
//           tokenizer's BOS and ended with EOS) or {"messages": […]} chats (SFT: rendered in the R1
//           format; the loss covers the final assistant turn only — its reasoning, answer and EOS)
//
// Id streams (ids, bin) are cut into windows of T+1 tokens: window j has inputs stream[j·T, j·T+T)
// and targets shifted by one. JSONL documents and chats are packed whole into rows of T+1 tokens
// (first fit over the most recent rows; the rest of a row is padding without loss), so no target
// is trained without the start of its document in view — short documents cut at a window edge
// would teach the model to continue text whose beginning it cannot see. A text document longer
// than a row is split into row-long pieces overlapping by one token (each target trained once); a
// chat longer than a row is cut. Attention stays inside each document (or piece).
//
// Order: a cursor counts the windows consumed. With shuffling, each epoch visits the windows in a
// permutation drawn from (seed, epoch); without, in order — so training step s with batch B takes
// windows s·B … s·B+B−1 (an interface). The cursor alone restores the position on resume.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/train_graph.h"
#include "tokenizer/tokenizer.h"

namespace r1::train {

enum class DataKind { kIds, kText, kChat };

class Dataset {
 public:
  // `tokenizer` is needed for JSONL (may be null for .ids/.bin). `vocab_size` bounds the ids.
  static Result<Dataset> Load(const std::string& path, int64_t T, const tok::Tokenizer* tokenizer,
                              int64_t vocab_size);

  DataKind kind() const { return kind_; }
  int64_t num_windows() const { return num_windows_; }
  int64_t num_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t num_documents() const { return num_docs_; }
  int64_t truncated() const { return truncated_; }  // chats cut to fit a row

  // Window index for cursor position c (c counts windows consumed since the start).
  int64_t WindowAt(int64_t cursor, bool shuffle, uint64_t seed) const;
  // Fills B rows from windows cursor … cursor+B−1.
  void Fill(int64_t cursor, int64_t B, bool shuffle, uint64_t seed, TrainBatch* batch) const;

 private:
  void Window(int64_t w, int32_t* ids, int32_t* targets, int32_t* doc) const;
  // Packs one JSONL document (tokens, and whether each is a trained target) into rows.
  void AddDocument(const std::vector<int32_t>& toks, const std::vector<uint8_t>& loss, bool split_long);
  void Place(const int32_t* toks, const uint8_t* loss, int64_t n);

  DataKind kind_ = DataKind::kIds;
  int64_t T_ = 0;
  // Streams: tokens_, doc_ of each token, and whether predicting it is trained (loss_).
  std::vector<int32_t> tokens_, doc_;
  std::vector<uint8_t> loss_;
  // JSONL: rows of T+1 tokens (same three arrays, row-major; doc_ holds a segment id per piece),
  // built at load, and the tokens used in each row.
  std::vector<int64_t> row_used_;
  int64_t num_windows_ = 0, num_docs_ = 0, truncated_ = 0;
  int32_t num_segments_ = 0;
  int32_t pad_id_ = 0;
  mutable std::vector<int64_t> perm_;  // cached permutation of the current epoch
  mutable int64_t perm_epoch_ = -1;
  mutable uint64_t perm_seed_ = 0;
};

}  // namespace r1::train
