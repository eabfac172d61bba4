// Piece -> ids memo for the BPE model, one per thread and model, so the hot path takes no lock.
//
// Open addressing over 12-byte slots; each entry's bytes and ids live back to back in one arena, so
// a hit touches one slot and one arena line. The table grows up to kMaxEntries and is then emptied
// whole (real text has a few tens of thousands of distinct pieces per 10 MB, so this is rare).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace r1::tok {

class PieceCache {
 public:
  PieceCache();

  static constexpr size_t kMaxEntries = size_t{1} << 16;
  static constexpr size_t kMaxArenaWords = size_t{1} << 22;  // 16 MB

  // The calling thread's cache for the model whose serial number is `owner`. A thread keeps the
  // caches of its few most recently used models; serial numbers are never reused.
  static PieceCache& ForThread(uint64_t owner);

  // Appends the ids cached for `piece` (whose HashBytes is `hash`) to `out`; false if absent.
  bool Lookup(std::string_view piece, uint64_t hash, std::vector<int32_t>* out) const {
    const auto tag = static_cast<uint32_t>(hash >> 32);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.len == 0) return false;
      if (s.tag == tag && s.len == piece.size() && Equal(s, piece)) {
        const int32_t* ids = arena_.data() + s.at + Words(s.len);
        if (s.n_ids == 1) {
          out->push_back(ids[0]);
        } else {
          out->insert(out->end(), ids, ids + s.n_ids);
        }
        return true;
      }
    }
  }

  // Remembers `ids` for `piece` (1 <= size <= 65535, not already present).
  void Insert(std::string_view piece, uint64_t hash, const int32_t* ids, size_t n_ids);

 private:
  struct Slot {
    uint32_t tag = 0;  // high 32 bits of the hash
    uint32_t at = 0;   // arena offset of the piece bytes, followed by the ids
    uint16_t len = 0;  // piece bytes; 0 marks an empty slot
    uint16_t n_ids = 0;
  };

  static size_t Words(size_t bytes) { return (bytes + 3) / 4; }
  // Whether the bytes of `s` (same length as `piece`, at least 1) are `piece`. Up to 16 bytes,
  // nearly every piece, take overlapping loads from each side instead of a call to memcmp.
  bool Equal(const Slot& s, std::string_view piece) const {
    const char* a = reinterpret_cast<const char*>(arena_.data() + s.at);
    const char* b = piece.data();
    const size_t n = piece.size();
    if (n >= 8 && n <= 16) {
      return Load<uint64_t>(a) == Load<uint64_t>(b) &&
             Load<uint64_t>(a + n - 8) == Load<uint64_t>(b + n - 8);
    }
    if (n >= 4 && n < 8) {
      return Load<uint32_t>(a) == Load<uint32_t>(b) &&
             Load<uint32_t>(a + n - 4) == Load<uint32_t>(b + n - 4);
    }
    if (n < 4) return a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1];
    return std::memcmp(a, b, n) == 0;
  }
  template <typename T>
  static T Load(const char* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  }
  void Clear();
  void Grow();
  void Place(const Slot& s, uint64_t hash);

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
  std::vector<int32_t> arena_;
};

}  // namespace r1::tok
