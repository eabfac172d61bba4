#include "train/data.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "core/file.h"
#include "core/log.h"
#include "core/rng.h"
#include "io/ids.h"
#include "tokenizer/chat_template.h"

namespace r1::train {
namespace {

using json = nlohmann::json;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

// Rows are T+1 tokens, allocated padded (pad token, segment −1, no loss). A piece goes into the
// first of the last kOpenRows rows with room for it, else into a new row: first fit over a short
// window keeps the packing deterministic and linear while filling most gaps.
void Dataset::Place(const int32_t* toks, const uint8_t* loss, int64_t n) {
  constexpr int64_t kOpenRows = 64;
  const int64_t row = T_ + 1;
  int64_t r = -1;
  for (int64_t i = std::max<int64_t>(0, num_windows_ - kOpenRows); i < num_windows_ && r < 0; ++i)
    if (row_used_[static_cast<size_t>(i)] + n <= row) r = i;
  if (r < 0) {
    r = num_windows_++;
    tokens_.resize(static_cast<size_t>(num_windows_ * row), pad_id_);
    doc_.resize(tokens_.size(), -1);
    loss_.resize(tokens_.size(), 0);
    row_used_.push_back(0);
  }
  const size_t at = static_cast<size_t>(r * row + row_used_[static_cast<size_t>(r)]);
  std::copy(toks, toks + n, tokens_.begin() + static_cast<std::ptrdiff_t>(at));
  std::copy(loss, loss + n, loss_.begin() + static_cast<std::ptrdiff_t>(at));
  std::fill_n(doc_.begin() + static_cast<std::ptrdiff_t>(at), n, num_segments_++);
  row_used_[static_cast<size_t>(r)] += n;
}

void Dataset::AddDocument(const std::vector<int32_t>& toks, const std::vector<uint8_t>& loss, bool split_long) {
  const int64_t row = T_ + 1, n = static_cast<int64_t>(toks.size());
  ++num_docs_;
  if (n <= row) return Place(toks.data(), loss.data(), n);
  if (!split_long) {
    ++truncated_;
    return Place(toks.data(), loss.data(), row);
  }
  // Pieces [k·T, k·T + T + 1) overlap by one token: each target is trained exactly once, and a
  // piece's first token is only context.
  for (int64_t start = 0; start + 1 < n; start += T_)
    Place(toks.data() + start, loss.data() + start, std::min(row, n - start));
}

Result<Dataset> Dataset::Load(const std::string& path, int64_t T, const tok::Tokenizer* tokenizer,
                              int64_t vocab_size) {
  if (T < 1) return InvalidArgument("sequence length must be >= 1");
  Dataset d;
  d.T_ = T;
  if (EndsWith(path, ".ids") || EndsWith(path, ".bin")) {
    d.kind_ = DataKind::kIds;
    if (EndsWith(path, ".ids")) {
      R1_ASSIGN_OR_RETURN(d.tokens_, io::ReadIdsFile(path));
    } else {
      R1_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
      if (bytes.size() % 4 != 0)
        return DataLoss(path + ": " + std::to_string(bytes.size()) + " bytes is not a whole number of uint32 ids");
      d.tokens_.resize(bytes.size() / 4);
      for (size_t i = 0; i < d.tokens_.size(); ++i) {
        uint32_t v;
        std::memcpy(&v, bytes.data() + 4 * i, 4);  // little-endian host
        if (v >= (1u << 31)) return DataLoss(path + ": id " + std::to_string(v) + " at position " + std::to_string(i) + " is out of range");
        d.tokens_[i] = static_cast<int32_t>(v);
      }
    }
    d.doc_.assign(d.tokens_.size(), 0);
    d.loss_.assign(d.tokens_.size(), 1);
    d.num_docs_ = 1;
  } else if (EndsWith(path, ".jsonl")) {
    if (!tokenizer) return InvalidArgument(path + ": JSONL data needs a tokenizer (a checkpoint with tokenizer.json, or --tokenizer)");
    R1_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
    std::istringstream in(text);
    std::string line;
    int64_t lineno = 0;
    bool any_text = false, any_chat = false;
    d.pad_id_ = tokenizer->eos_id() >= 0 ? tokenizer->eos_id() : 0;
    while (std::getline(in, line)) {
      ++lineno;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = path + ":" + std::to_string(lineno);
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) return InvalidArgument(where + ": not a JSON object");
      if (j.contains("text")) {
        if (!j["text"].is_string()) return InvalidArgument(where + ": \"text\" must be a string");
        any_text = true;
        std::vector<int32_t> ids = tokenizer->Encode(j["text"].get<std::string>(), /*add_special_tokens=*/true);
        if (tokenizer->eos_id() >= 0) ids.push_back(tokenizer->eos_id());
        d.AddDocument(ids, std::vector<uint8_t>(ids.size(), 1), /*split_long=*/true);
      } else if (j.contains("messages")) {
        any_chat = true;
        auto msgs = tok::ParseChatMessages(j["messages"]);
        if (!msgs.ok()) return msgs.status().WithContext(where);
        if (msgs->empty() || msgs->back().role != "assistant")
          return InvalidArgument(where + ": a chat must end with an assistant message (the turn that is trained)");
        std::vector<tok::ChatMessage> context(msgs->begin(), msgs->end() - 1);
        auto prompt_text = tok::RenderChat(*tokenizer, context, /*add_generation_prompt=*/true);
        if (!prompt_text.ok()) return prompt_text.status().WithContext(where);
        // The generation prompt already opens the reasoning with "<think>\n".
        std::string answer = msgs->back().content;
        if (answer.rfind("<think>\n", 0) == 0) answer = answer.substr(8);
        else if (answer.rfind("<think>", 0) == 0) answer = answer.substr(7);
        std::vector<int32_t> prompt = tokenizer->Encode(*prompt_text, /*add_special_tokens=*/false);
        std::vector<int32_t> completion = tokenizer->Encode(answer, /*add_special_tokens=*/false);
        if (tokenizer->eos_id() >= 0) completion.push_back(tokenizer->eos_id());
        std::vector<uint8_t> loss(prompt.size(), 0);
        loss.insert(loss.end(), completion.size(), 1);
        prompt.insert(prompt.end(), completion.begin(), completion.end());
        d.AddDocument(prompt, loss, /*split_long=*/false);
      } else {
        return InvalidArgument(where + ": expected a \"text\" or a \"messages\" field");
      }
      if (any_text && any_chat) return InvalidArgument(where + ": mixes \"text\" documents and \"messages\" chats");
    }
    d.kind_ = any_chat ? DataKind::kChat : DataKind::kText;
  } else {
    return InvalidArgument(path + ": unknown data format (expected .jsonl, .ids or .bin)");
  }
  for (size_t i = 0; i < d.tokens_.size(); ++i)
    if (d.tokens_[i] >= vocab_size)
      return InvalidArgument(path + ": token id " + std::to_string(d.tokens_[i]) + " (position " + std::to_string(i) +
                             ") is outside the model's vocabulary (" + std::to_string(vocab_size) + ")");
  if (d.kind_ == DataKind::kIds) d.num_windows_ = d.tokens_.empty() ? 0 : (static_cast<int64_t>(d.tokens_.size()) - 1) / T;
  if (d.num_windows_ == 0)
    return InvalidArgument(path + ": " + std::to_string(d.tokens_.size()) + " tokens do not fill one window of " +
                           std::to_string(T + 1));
  return d;
}

int64_t Dataset::WindowAt(int64_t cursor, bool shuffle, uint64_t seed) const {
  const int64_t W = num_windows_;
  const int64_t epoch = cursor / W, i = cursor % W;
  if (!shuffle) return i;
  if (perm_epoch_ != epoch || perm_seed_ != seed) {
    perm_.resize(static_cast<size_t>(W));
    std::iota(perm_.begin(), perm_.end(), 0);
    Rng rng(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(epoch) + 1);
    for (int64_t k = W - 1; k > 0; --k) std::swap(perm_[k], perm_[rng.Below(static_cast<uint64_t>(k + 1))]);
    perm_epoch_ = epoch;
    perm_seed_ = seed;
  }
  return perm_[i];
}

void Dataset::Window(int64_t w, int32_t* ids, int32_t* targets, int32_t* doc) const {
  // Id streams: window w starts at w·T; JSONL rows at w·(T+1). Either way T+1 tokens are read.
  const int64_t start = kind_ == DataKind::kIds ? w * T_ : w * (T_ + 1);
  for (int64_t t = 0; t < T_; ++t) {
    const int64_t i = start + t;
    ids[t] = tokens_[i];
    doc[t] = doc_[i];
    const bool same_doc = doc_[i + 1] == doc_[i] && doc_[i] >= 0;
    targets[t] = same_doc && loss_[i + 1] ? tokens_[i + 1] : -1;
  }
}

void Dataset::Fill(int64_t cursor, int64_t B, bool shuffle, uint64_t seed, TrainBatch* batch) const {
  batch->B = B;
  batch->T = T_;
  batch->ids.assign(static_cast<size_t>(B * T_), 0);
  batch->targets.assign(static_cast<size_t>(B * T_), -1);
  batch->doc.assign(static_cast<size_t>(B * T_), 0);
  for (int64_t b = 0; b < B; ++b)
    Window(WindowAt(cursor + b, shuffle, seed), batch->ids.data() + b * T_, batch->targets.data() + b * T_,
           batch->doc.data() + b * T_);
}

}  // namespace r1::train
