// Training data: token streams cut into windows, and chats packed into rows.
//
// Inputs (--data):
//   *.ids   whitespace-separated token ids, one stream
//   *.bin   little-endian uint32 token ids, one stream
//   *.jsonl one JSON object per line: {"text": …} documents (pretraining; each tokenized with the
//           tokenizer's BOS and ended with EOS) or {"messages": […]} chats (SFT: rendered in the R1
//           format; the loss covers the final assistant turn only — its reasoning, answer and EOS)
//
// Streams (ids, bin, text) are cut into windows of T+1 tokens: window j has inputs
// stream[j·T, j·T+T) and targets shifted by one; a target in another document than its input is
// not trained on, and attention stays inside each document. Chats are packed whole into rows
// (greedily, in order), the remainder of a row padded and masked; a chat longer than a row is cut.
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
  Status AddChat(const std::vector<int32_t>& prompt, const std::vector<int32_t>& completion);

  DataKind kind_ = DataKind::kIds;
  int64_t T_ = 0;
  // Streams: tokens_, doc_ of each token, and whether predicting it is trained (loss_).
  std::vector<int32_t> tokens_, doc_;
  std::vector<uint8_t> loss_;
  // Chats: rows of T+1 tokens (same three arrays, row-major), built at load.
  int64_t num_windows_ = 0, num_docs_ = 0, truncated_ = 0;
  int32_t pad_id_ = 0;
  mutable std::vector<int64_t> perm_;  // cached permutation of the current epoch
  mutable int64_t perm_epoch_ = -1;
  mutable uint64_t perm_seed_ = 0;
};

}  // namespace r1::train
