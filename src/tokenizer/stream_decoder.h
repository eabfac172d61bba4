// Incremental detokenization for token-by-token streaming. Text is released only once its UTF-8 is
// complete: a character whose bytes are spread over several tokens (emoji, CJK in byte-level
// vocabularies) is held back until its last byte arrives, so no chunk ever carries a broken
// sequence. The concatenated chunks equal Tokenizer::Decode of the whole sequence, except that
// clean_up_tokenization_spaces (Llama-3 configs) is not applied while streaming.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace r1::tok {

class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
      : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

  // Adds one token; returns the text that became complete (often empty or one character).
  std::string Push(int32_t id);
  // Ends the stream: bytes still held back (a character cut off by the end) come out as U+FFFD.
  std::string Finish();
  // Bytes held back, waiting for the rest of a character.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace r1::tok
