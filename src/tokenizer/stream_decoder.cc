#include "tokenizer/stream_decoder.h"

#include "tokenizer/utf8.h"

namespace r1::tok {

std::string StreamDecoder::Push(int32_t id) {
  if (tokenizer_.IsAdded(id)) {
    if (skip_special_ && tokenizer_.IsSpecial(id)) return {};
    // As in Decode: the byte run before an added token ends there.
    std::string out = SanitizeUtf8(pending_);
    pending_.clear();
    out += tokenizer_.TokenBytes(id);
    return out;
  }
  pending_ += tokenizer_.TokenBytes(id);
  const size_t n = CompleteUtf8Prefix(pending_);
  if (n == 0) return {};
  std::string out = SanitizeUtf8(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string StreamDecoder::Finish() {
  std::string out = SanitizeUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace r1::tok
