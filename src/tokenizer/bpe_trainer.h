// Byte-level BPE training (= what tokenizers' BpeTrainer does for a ByteLevel tokenizer): count
// the pre-tokenized words of a corpus, then repeatedly merge the most frequent adjacent pair.
// The pre-tokenizer is DeepSeek-V3's (digit groups, CJK/kana runs, its main regex, ByteLevel);
// `--digits single` cuts numbers into single digits instead of groups of up to three.
//
// Deterministic: ties between equally frequent pairs go to the pair whose (left, right) token
// bytes compare smallest, so the result never depends on hash order or thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "tokenizer/added_vocab.h"
#include "tokenizer/pre_tokenizer.h"

namespace r1::tok {

enum class DigitSplit { kSingle, kGroup3 };

struct BpeTrainerOptions {
  int vocab_size = 8192;  // everything: special tokens, the 256 bytes and merged tokens
  DigitSplit digits = DigitSplit::kGroup3;
  int min_frequency = 2;  // stop when the best pair is rarer than this
  bool progress = true;   // progress lines on stderr
};

// The tokens a trained R1 tokenizer reserves. Ids 0..2 come first (as in DeepSeek-V3), the rest
// follow the merged tokens.
struct SpecialTokenSpec {
  std::string content;
  bool special;
};
const std::vector<SpecialTokenSpec>& R1LeadingSpecialTokens();   // BOS, EOS, pad
const std::vector<SpecialTokenSpec>& R1TrailingSpecialTokens();  // chat, think, FIM, tools

// The pre_tokenizer JSON our trainer writes and uses.
std::string TrainerPreTokenizerJson(DigitSplit digits);

struct TrainedBpe {
  std::vector<std::string> tokens;  // id -> raw bytes (ids 0..2 and trailing specials: content)
  std::vector<std::pair<int32_t, int32_t>> merges;  // in rank order, as token ids
  int32_t first_trailing_special = 0;
  DigitSplit digits = DigitSplit::kGroup3;
  uint64_t corpus_bytes = 0;
  uint64_t words = 0;  // distinct pre-tokenized pieces
};

class BpeTrainer {
 public:
  static Result<std::unique_ptr<BpeTrainer>> Create(const BpeTrainerOptions& options);

  // Pre-tokenizes and counts. Special-token strings in the text are cut out first, never merged.
  void AddText(std::string_view text);
  // Streams a file through AddText in chunks that end at line starts.
  Status AddFile(const std::string& path);

  Result<TrainedBpe> Train();

 private:
  BpeTrainer() = default;
  BpeTrainerOptions options_;
  PreTokenizer pre_tokenizer_;
  AddedVocab specials_;
  std::unordered_map<std::string, int64_t> word_counts_;
  uint64_t corpus_bytes_ = 0;
};

// Writes tokenizer.json and tokenizer_config.json (DeepSeek-V3 layout, R1 chat template) into
// `dir`, creating it if needed; each file is written atomically.
Status WriteTrainedTokenizer(const TrainedBpe& bpe, const std::string& dir);

}  // namespace r1::tok
