#include "train/data.h"

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

Status Dataset::AddChat(const std::vector<int32_t>& prompt, const std::vector<int32_t>& completion) {
  // Rows are T+1 tokens; a chat goes whole into the current row or starts a new one.
  const int64_t row = T_ + 1;
  int64_t n = static_cast<int64_t>(prompt.size() + completion.size());
  std::vector<int32_t> toks(prompt);
  toks.insert(toks.end(), completion.begin(), completion.end());
  std::vector<uint8_t> loss(prompt.size(), 0);
  loss.insert(loss.end(), completion.size(), 1);
  if (n > row) {
    toks.resize(static_cast<size_t>(row));
    loss.resize(static_cast<size_t>(row));
    n = row;
    ++truncated_;
  }
  const int64_t used = static_cast<int64_t>(tokens_.size()) - num_windows_ * row;  // in the open row
  if (!tokens_.empty() && used + n > row) {
    // Pad out the open row (pad tokens: document −1, no loss) and open a new one.
    const int64_t pad = row - used;
    tokens_.insert(tokens_.end(), static_cast<size_t>(pad), pad_id_);
    doc_.insert(doc_.end(), static_cast<size_t>(pad), -1);
    loss_.insert(loss_.end(), static_cast<size_t>(pad), 0);
    ++num_windows_;
  }
  tokens_.insert(tokens_.end(), toks.begin(), toks.end());
  doc_.insert(doc_.end(), toks.size(), static_cast<int32_t>(num_docs_));
  loss_.insert(loss_.end(), loss.begin(), loss.end());
  ++num_docs_;
  return Status::Ok();
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
        d.tokens_.insert(d.tokens_.end(), ids.begin(), ids.end());
        d.doc_.insert(d.doc_.end(), ids.size(), static_cast<int32_t>(d.num_docs_++));
        d.loss_.insert(d.loss_.end(), ids.size(), 1);
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
        R1_RETURN_IF_ERROR(d.AddChat(prompt, completion));
      } else {
        return InvalidArgument(where + ": expected a \"text\" or a \"messages\" field");
      }
      if (any_text && any_chat) return InvalidArgument(where + ": mixes \"text\" documents and \"messages\" chats");
    }
    d.kind_ = any_chat ? DataKind::kChat : DataKind::kText;
    if (d.kind_ == DataKind::kChat && !d.tokens_.empty()) {
      // Close the last row.
      const int64_t row = T + 1;
      const int64_t used = static_cast<int64_t>(d.tokens_.size()) - d.num_windows_ * row;
      d.tokens_.insert(d.tokens_.end(), static_cast<size_t>(row - used), d.pad_id_);
      d.doc_.insert(d.doc_.end(), static_cast<size_t>(row - used), -1);
      d.loss_.insert(d.loss_.end(), static_cast<size_t>(row - used), 0);
      ++d.num_windows_;
    }
  } else {
    return InvalidArgument(path + ": unknown data format (expected .jsonl, .ids or .bin)");
  }
  for (size_t i = 0; i < d.tokens_.size(); ++i)
    if (d.tokens_[i] >= vocab_size)
      return InvalidArgument(path + ": token id " + std::to_string(d.tokens_[i]) + " (position " + std::to_string(i) +
                             ") is outside the model's vocabulary (" + std::to_string(vocab_size) + ")");
  if (d.kind_ != DataKind::kChat) d.num_windows_ = d.tokens_.empty() ? 0 : (static_cast<int64_t>(d.tokens_.size()) - 1) / T;
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
  // Streams: window w starts at w·T; chat rows at w·(T+1). Either way T+1 tokens are read.
  const int64_t start = kind_ == DataKind::kChat ? w * (T_ + 1) : w * T_;
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
