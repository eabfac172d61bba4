#include "tokenizer/piece_cache.h"

#include <algorithm>
#include <array>
#include <memory>

#include "tokenizer/flat_hash.h"

namespace r1::tok {

PieceCache::PieceCache() {
  slots_.assign(1024, Slot{});
  mask_ = slots_.size() - 1;
}

PieceCache& PieceCache::ForThread(uint64_t owner) {
  // Most recently used first. Evicting the last entry frees a model's cache on this thread once
  // enough other models have been used here; a destroyed model's cache is simply never hit again.
  struct Entry {
    uint64_t owner = 0;
    std::unique_ptr<PieceCache> cache;
  };
  thread_local std::array<Entry, 4> entries;
  if (entries[0].owner == owner) return *entries[0].cache;
  auto it = std::find_if(entries.begin() + 1, entries.end(),
                         [&](const Entry& e) { return e.owner == owner; });
  if (it == entries.end()) {
    it = entries.end() - 1;
    it->owner = owner;
    it->cache = std::make_unique<PieceCache>();
  }
  std::rotate(entries.begin(), it, it + 1);
  return *entries[0].cache;
}

void PieceCache::Insert(std::string_view piece, uint64_t hash, const int32_t* ids, size_t n_ids) {
  const size_t words = Words(piece.size()) + n_ids;
  if (size_ + 1 > kMaxEntries || arena_.size() + words > kMaxArenaWords) Clear();
  if (2 * (size_ + 1) > slots_.size()) Grow();
  Slot s;
  s.tag = static_cast<uint32_t>(hash >> 32);
  s.at = static_cast<uint32_t>(arena_.size());
  s.len = static_cast<uint16_t>(piece.size());
  s.n_ids = static_cast<uint16_t>(n_ids);
  arena_.resize(arena_.size() + words, 0);
  std::memcpy(arena_.data() + s.at, piece.data(), piece.size());
  std::memcpy(arena_.data() + s.at + Words(piece.size()), ids, n_ids * sizeof(int32_t));
  Place(s, hash);
  ++size_;
}

void PieceCache::Place(const Slot& s, uint64_t hash) {
  size_t i = hash & mask_;
  while (slots_[i].len != 0) i = (i + 1) & mask_;
  slots_[i] = s;
}

void PieceCache::Clear() {
  std::fill(slots_.begin(), slots_.end(), Slot{});
  arena_.clear();
  size_ = 0;
}

void PieceCache::Grow() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.len == 0) continue;
    const std::string_view bytes(reinterpret_cast<const char*>(arena_.data() + s.at), s.len);
    Place(s, HashBytes(bytes));
  }
}

}  // namespace r1::tok
