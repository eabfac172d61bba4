#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <queue>

#include "core/check.h"
#include "core/log.h"
#include "tokenizer/byte_level.h"

namespace r1::tok {

using json = nlohmann::json;

// Open-addressing hash table from a pair of ids to (rank, merged id).
struct BpeModel::MergeTable {
  struct Entry {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t id = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  std::vector<Entry> slots;
  uint64_t mask = 0;

  static uint64_t Key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static uint64_t Hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
  }
  void Reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots.assign(cap, Entry{});
    mask = cap - 1;
  }
  // Keeps the first (lowest-rank) entry for a duplicated pair, as HF does.
  void Insert(int32_t a, int32_t b, int32_t rank, int32_t id) {
    const uint64_t k = Key(a, b);
    for (uint64_t i = Hash(k) & mask;; i = (i + 1) & mask) {
      if (slots[i].key == kEmpty) {
        slots[i] = {k, rank, id};
        return;
      }
      if (slots[i].key == k) return;
    }
  }
  const Entry* Find(int32_t a, int32_t b) const {
    const uint64_t k = Key(a, b);
    for (uint64_t i = Hash(k) & mask;; i = (i + 1) & mask) {
      if (slots[i].key == k) return &slots[i];
      if (slots[i].key == kEmpty) return nullptr;
    }
  }
};

// Piece -> ids, sharded so that threads encoding in parallel rarely contend.
struct BpeModel::Cache {
  static constexpr int kShards = 16;
  static constexpr size_t kMaxEntriesPerShard = 1 << 14;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
  };
  std::array<Shard, kShards> shards;
};

BpeModel::BpeModel() : merges_(std::make_unique<MergeTable>()), cache_(std::make_unique<Cache>()) {
  byte_ids_.fill(-1);
}
BpeModel::~BpeModel() = default;
BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;

Result<BpeModel> BpeModel::FromJson(const json& j) {
  if (!j.is_object()) return InvalidArgument("\"model\" must be an object");
  const std::string type = j.value("type", std::string("BPE"));
  if (type != "BPE") {
    return Unimplemented("model type \"" + type + "\" is unsupported (only BPE)");
  }
  if (j.contains("dropout") && !j["dropout"].is_null() && j["dropout"].get<double>() != 0.0) {
    return Unimplemented("BPE dropout is unsupported");
  }
  if (j.value("byte_fallback", false)) {
    return Unimplemented("BPE byte_fallback is unsupported (only byte-level vocabularies)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (j.contains(key) && j[key].is_string() && !j[key].get<std::string>().empty()) {
      return Unimplemented(std::string("BPE ") + key + " is unsupported");
    }
  }
  const auto vocab = j.find("vocab");
  if (vocab == j.end() || !vocab->is_object()) {
    return InvalidArgument("model.vocab: expected an object of token -> id");
  }
  BpeModel m;
  m.ignore_merges_ = j.value("ignore_merges", false);
  int32_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > (1 << 30)) {
      return InvalidArgument("model.vocab[\"" + it.key() + "\"]: expected a non-negative id");
    }
    max_id = std::max(max_id, it.value().get<int32_t>());
  }
  m.bytes_.resize(max_id + 1);
  m.ids_.reserve(vocab->size() * 2);
  std::vector<std::string> strings(max_id + 1);
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const int32_t id = it.value().get<int32_t>();
    auto raw = ByteLevelToBytes(it.key());
    // Tokens outside the byte-level alphabet can never be produced by merging bytes; they decode
    // to their own text.
    m.bytes_[id] = raw ? *raw : it.key();
    strings[id] = it.key();
    if (raw) m.ids_.emplace(*raw, id);
  }
  for (int b = 0; b < 256; ++b) {
    auto it = m.ids_.find(std::string(1, static_cast<char>(b)));
    m.byte_ids_[b] = it == m.ids_.end() ? -1 : it->second;
  }

  const auto merges = j.find("merges");
  if (merges == j.end() || !merges->is_array()) {
    return InvalidArgument("model.merges: expected an array");
  }
  // Map vocabulary strings to ids for the merge list.
  std::unordered_map<std::string, int32_t> by_string;
  by_string.reserve(strings.size() * 2);
  for (int32_t id = 0; id <= max_id; ++id) {
    if (!strings[id].empty()) by_string.emplace(strings[id], id);
  }
  m.merges_->Reserve(merges->size());
  int32_t rank = 0;
  for (const json& e : *merges) {
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) {
        return InvalidArgument(
            StrFormat("model.merges[%d]: \"%s\" is not \"a b\"", rank, s.c_str()));
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
      if (b.find(' ') != std::string::npos) b = b.substr(0, b.find(' '));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      return InvalidArgument(
          StrFormat("model.merges[%d]: expected \"a b\" or [\"a\", \"b\"]", rank));
    }
    auto ia = by_string.find(a), ib = by_string.find(b), ic = by_string.find(a + b);
    if (ia == by_string.end() || ib == by_string.end() || ic == by_string.end()) {
      return InvalidArgument(StrFormat("model.merges[%d]: \"%s\" + \"%s\" is not in the vocabulary",
                                       rank, a.c_str(), b.c_str()));
    }
    m.merges_->Insert(ia->second, ib->second, rank, ic->second);
    ++rank;
  }
  m.num_merges_ = merges->size();
  return m;
}

int32_t BpeModel::TokenId(std::string_view bytes) const {
  auto it = ids_.find(bytes);
  return it == ids_.end() ? -1 : it->second;
}

std::string BpeModel::TokenString(int32_t id) const { return BytesToByteLevel(bytes_[id]); }

void BpeModel::Encode(std::string_view piece, std::vector<int32_t>* out) const {
  if (piece.size() == 1) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(piece[0])];
    if (id >= 0) out->push_back(id);
    return;
  }
  if (ignore_merges_) {
    if (int32_t id = TokenId(piece); id >= 0) {
      out->push_back(id);
      return;
    }
  }
  const bool cacheable = piece.size() <= kMaxCachedPiece;
  Cache::Shard* shard = nullptr;
  if (cacheable) {
    shard = &cache_->shards[std::hash<std::string_view>{}(piece) % Cache::kShards];
    std::lock_guard<std::mutex> lock(shard->mu);
    auto it = shard->map.find(piece);
    if (it != shard->map.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(piece.size());
  // A byte missing from the vocabulary has no token; like the references we drop it.
  for (unsigned char c : piece) {
    if (byte_ids_[c] >= 0) symbols.push_back(byte_ids_[c]);
  }
  if (symbols.size() <= 64) {
    MergeSymbols(&symbols);
  } else {
    MergeSymbolsHeap(&symbols);
  }
  out->insert(out->end(), symbols.begin(), symbols.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(shard->mu);
    if (shard->map.size() >= Cache::kMaxEntriesPerShard) shard->map.clear();
    shard->map.emplace(std::string(piece), std::move(symbols));
  }
}

// Quadratic but allocation-free; fastest for the short pieces that make up almost all text.
void BpeModel::MergeSymbols(std::vector<int32_t>* symbols) const {
  std::vector<int32_t>& s = *symbols;
  while (s.size() > 1) {
    int32_t best_rank = INT32_MAX, best_id = -1;
    size_t best_pos = 0;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const MergeTable::Entry* e = merges_->Find(s[i], s[i + 1]);
      if (e != nullptr && e->rank < best_rank) {
        best_rank = e->rank;
        best_id = e->id;
        best_pos = i;
      }
    }
    if (best_id < 0) break;
    s[best_pos] = best_id;
    s.erase(s.begin() + best_pos + 1);
  }
}

// = tokenizers' models/bpe/word.rs merge_all: a min-heap of (rank, position) over a doubly
// linked list of symbols; stale heap entries are skipped when popped.
void BpeModel::MergeSymbolsHeap(std::vector<int32_t>* symbols) const {
  std::vector<int32_t>& s = *symbols;
  const int n = static_cast<int>(s.size());
  std::vector<int> prev(n), next(n);
  std::vector<char> alive(n, 1);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Item {
    int32_t rank;
    int pos;
    int32_t id;
    bool operator>(const Item& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Item> storage;
  storage.reserve(2 * n);
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap(std::greater<Item>(),
                                                                        std::move(storage));
  auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    if (const MergeTable::Entry* e = merges_->Find(s[pos], s[next[pos]])) {
      heap.push({e->rank, pos, e->id});
    }
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Item top = heap.top();
    heap.pop();
    const int pos = top.pos;
    if (!alive[pos] || next[pos] < 0) continue;
    const int right = next[pos];
    const MergeTable::Entry* e = merges_->Find(s[pos], s[right]);
    if (e == nullptr || e->id != top.id || e->rank != top.rank) continue;  // stale
    s[pos] = top.id;
    alive[right] = 0;
    next[pos] = next[right];
    if (next[pos] >= 0) prev[next[pos]] = pos;
    push(prev[pos]);
    push(pos);
  }
  size_t w = 0;
  for (int i = 0; i >= 0 && i < n; i = next[i]) s[w++] = s[i];
  s.resize(w);
}

}  // namespace r1::tok
