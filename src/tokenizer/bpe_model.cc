#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/check.h"
#include "core/log.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/piece_cache.h"

namespace r1::tok {

using json = nlohmann::json;

namespace {

// Serial numbers for PieceCache::ForThread; never reused, so a cache cannot outlive its meaning.
std::atomic<uint64_t> next_serial{1};

}  // namespace

BpeModel::BpeModel() : serial_(next_serial.fetch_add(1, std::memory_order_relaxed)) {
  byte_ids_.fill(-1);
}

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
  m.ids_.Reserve(vocab->size());
  std::vector<std::string> strings(max_id + 1);
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const int32_t id = it.value().get<int32_t>();
    auto raw = ByteLevelToBytes(it.key());
    // Tokens outside the byte-level alphabet can never be produced by merging bytes; they decode
    // to their own text.
    m.bytes_[id] = raw ? *raw : it.key();
    strings[id] = it.key();
    if (raw) m.ids_.Insert(id, m.bytes_);
  }
  for (int b = 0; b < 256; ++b) m.byte_ids_[b] = m.TokenId(std::string(1, static_cast<char>(b)));

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
  m.merges_.Reserve(merges->size());
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
    m.merges_.Insert(ia->second, ib->second, rank, ic->second);
    ++rank;
  }
  m.num_merges_ = merges->size();
  return m;
}

std::string BpeModel::TokenString(int32_t id) const { return BytesToByteLevel(bytes_[id]); }

void BpeModel::Encode(std::string_view piece, std::vector<int32_t>* out) const {
  EncodePiece(piece, PieceCache::ForThread(serial_), out);
}

void BpeModel::Encode(const std::vector<std::string_view>& pieces,
                      std::vector<int32_t>* out) const {
  PieceCache& cache = PieceCache::ForThread(serial_);
  for (std::string_view piece : pieces) EncodePiece(piece, cache, out);
}

void BpeModel::EncodePiece(std::string_view piece, PieceCache& cache,
                           std::vector<int32_t>* out) const {
  if (piece.size() <= 1) {
    // A byte missing from the vocabulary has no token; like the references we drop it.
    if (piece.size() == 1 && byte_ids_[static_cast<uint8_t>(piece[0])] >= 0) {
      out->push_back(byte_ids_[static_cast<uint8_t>(piece[0])]);
    }
    return;
  }
  if (piece.size() > kMaxCachedPiece) {
    EncodeUncached(piece, out);
    return;
  }
  const uint64_t hash = HashBytes(piece);
  if (cache.Lookup(piece, hash, out)) return;
  const size_t start = out->size();
  EncodeUncached(piece, out);
  cache.Insert(piece, hash, out->data() + start, out->size() - start);
}

void BpeModel::EncodeUncached(std::string_view piece, std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    if (int32_t id = TokenId(piece); id >= 0) {
      out->push_back(id);
      return;
    }
  }
  // The symbols are written straight into `out` and merged there.
  const size_t start = out->size();
  out->resize(start + piece.size());
  int32_t* symbols = out->data() + start;
  size_t n = 0;
  for (unsigned char c : piece) {
    if (byte_ids_[c] >= 0) symbols[n++] = byte_ids_[c];
  }
  n = n <= kMaxLinearMerge ? MergeLinear(symbols, n) : MergeLong(symbols, n);
  out->resize(start + n);
}

// O(n^2) in cheap integer steps but only O(n) merge-table lookups: rank[i] holds the rank of the
// pair (s[i], s[i+1]), and a merge recomputes only the two pairs it touches. No allocation.
size_t BpeModel::MergeLinear(int32_t* s, size_t n) const {
  if (n < 2) return n;
  constexpr int32_t kNone = INT32_MAX;
  int32_t rank[kMaxLinearMerge], merged[kMaxLinearMerge];
  auto set_pair = [&](size_t i) {
    const MergeTable::Entry* e = merges_.Find(s[i], s[i + 1]);
    rank[i] = e != nullptr ? e->rank : kNone;
    merged[i] = e != nullptr ? e->id : -1;
  };
  for (size_t i = 0; i + 1 < n; ++i) set_pair(i);
  while (n > 1) {
    // The lowest rank first (a plain min the compiler vectorizes), then its leftmost position.
    int32_t best = kNone;
    for (size_t i = 0; i + 1 < n; ++i) best = std::min(best, rank[i]);
    if (best == kNone) break;
    size_t i = 0;
    while (rank[i] != best) ++i;
    s[i] = merged[i];
    // Drop symbol i+1 and the pair that started there.
    std::memmove(s + i + 1, s + i + 2, (n - i - 2) * sizeof(int32_t));
    if (i + 3 < n) {
      std::memmove(rank + i + 1, rank + i + 2, (n - i - 3) * sizeof(int32_t));
      std::memmove(merged + i + 1, merged + i + 2, (n - i - 3) * sizeof(int32_t));
    }
    --n;
    if (i + 1 < n) set_pair(i);
    if (i > 0) set_pair(i - 1);
  }
  return n;
}

// = tokenizers' models/bpe/word.rs merge_all: always the lowest (rank, position) among the current
// adjacent pairs, over a doubly linked list of symbols whose positions are their original indices.
// Instead of one heap of every pair, pairs are filed in buckets by rank and a small heap holds the
// distinct ranks. A bucket is sorted once and swept left to right: merging (a, b) never creates
// another (a, b) pair, so no position joins the bucket being swept. If a merge creates a pair of a
// lower rank (merge lists need not be ordered that way; Llama-3's is not), the sweep is suspended
// and the rest of the bucket waits for its turn again. A position's filed entry is stale once the
// pair there has another rank (a rank names one pair, so an equal rank is the same merge).
size_t BpeModel::MergeLong(int32_t* s, size_t n) const {
  struct Scratch {
    std::vector<int32_t> prev, next, rank, merged;
    // rank -> index in `buckets`; -1 if none, as every entry is between calls
    std::vector<int32_t> bucket_of_rank;
    std::vector<std::vector<int32_t>> buckets;
    std::vector<int32_t> free_buckets;
    std::vector<int32_t> ranks;  // min-heap of the ranks that have a bucket
    std::vector<int32_t> sweep;
  };
  thread_local Scratch t;
  constexpr int32_t kNone = INT32_MAX;
  const auto end = static_cast<int32_t>(n);
  t.prev.resize(n);
  t.next.resize(n);
  t.rank.assign(n, kNone);
  t.merged.resize(n);
  if (t.bucket_of_rank.size() < num_merges_) t.bucket_of_rank.resize(num_merges_, -1);
  int32_t* const prev = t.prev.data();
  int32_t* const next = t.next.data();
  int32_t* const rank = t.rank.data();
  int32_t* const merged = t.merged.data();
  for (int32_t i = 0; i < end; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1;
  }
  auto bucket = [&](int32_t r) -> std::vector<int32_t>& {
    int32_t& b = t.bucket_of_rank[r];
    if (b < 0) {
      if (t.free_buckets.empty()) {
        t.free_buckets.push_back(static_cast<int32_t>(t.buckets.size()));
        t.buckets.emplace_back();
      }
      b = t.free_buckets.back();
      t.free_buckets.pop_back();
      t.ranks.push_back(r);
      std::push_heap(t.ranks.begin(), t.ranks.end(), std::greater<>());
    }
    return t.buckets[b];
  };
  // Looks up the pair starting at i and files it.
  auto file = [&](int32_t i) {
    rank[i] = kNone;
    if (next[i] >= end) return;
    const MergeTable::Entry* e = merges_.Find(s[i], s[next[i]]);
    if (e == nullptr) return;
    rank[i] = e->rank;
    merged[i] = e->id;
    bucket(e->rank).push_back(i);
  };
  for (int32_t i = 0; i + 1 < end; ++i) file(i);
  while (!t.ranks.empty()) {
    std::pop_heap(t.ranks.begin(), t.ranks.end(), std::greater<>());
    const int32_t r = t.ranks.back();
    t.ranks.pop_back();
    int32_t& b = t.bucket_of_rank[r];
    t.sweep.clear();
    t.sweep.swap(t.buckets[b]);
    t.free_buckets.push_back(b);
    b = -1;
    if (!std::is_sorted(t.sweep.begin(), t.sweep.end())) std::sort(t.sweep.begin(), t.sweep.end());
    for (size_t k = 0; k < t.sweep.size(); ++k) {
      const int32_t i = t.sweep[k];
      if (rank[i] != r) continue;  // stale
      const int32_t j = next[i];
      s[i] = merged[i];
      rank[j] = kNone;  // j is gone
      next[i] = next[j];
      if (next[i] < end) prev[next[i]] = i;
      if (prev[i] >= 0) file(prev[i]);
      file(i);
      if (!t.ranks.empty() && t.ranks.front() < r) {  // a lower rank appeared: it goes first
        std::vector<int32_t>& rest = bucket(r);
        rest.insert(rest.end(), t.sweep.begin() + k + 1, t.sweep.end());
        break;
      }
    }
  }
  size_t w = 0;
  for (int32_t i = 0; i < end; i = next[i]) s[w++] = s[i];
  return w;
}

}  // namespace r1::tok
