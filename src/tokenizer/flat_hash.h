// Open-addressing hash tables for the BPE hot path: a byte-string hash, the merge table keyed by a
// pair of token ids, and the vocabulary index from raw bytes to id. Linear probing over a
// power-of-two array of small slots, no per-entry allocation, built once at load time.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace r1::tok {

namespace flat_hash_internal {

inline uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
// 64x64 -> 128-bit multiply folded to 64 bits (the wyhash mixer).
inline uint64_t Mix(uint64_t a, uint64_t b) {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
}

}  // namespace flat_hash_internal

// A fast 64-bit hash of a byte string for in-memory tables (not stable across versions). Strings of
// up to 16 bytes, nearly every piece of real text, take two overlapping loads and two multiplies.
inline uint64_t HashBytes(std::string_view s) {
  using namespace flat_hash_internal;
  constexpr uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL,
                     k2 = 0x8ebc6af09c88c6e3ULL;
  const char* p = s.data();
  const size_t n = s.size();
  uint64_t a = 0, b = 0, seed = k0 ^ n;
  if (n <= 16) {
    if (n >= 8) {
      a = Load64(p);
      b = Load64(p + n - 8);
    } else if (n >= 4) {
      a = Load32(p);
      b = Load32(p + n - 4);
    } else if (n > 0) {
      a = (uint64_t{static_cast<uint8_t>(p[0])} << 16) |
          (uint64_t{static_cast<uint8_t>(p[n >> 1])} << 8) | static_cast<uint8_t>(p[n - 1]);
    }
  } else {
    size_t i = n;
    for (; i > 16; i -= 16, p += 16) seed = Mix(Load64(p) ^ k1, Load64(p + 8) ^ seed);
    a = Load64(p + i - 16);
    b = Load64(p + i - 8);
  }
  return Mix(k1 ^ n, Mix(a ^ k1, b ^ seed) ^ k2);
}

// (left id, right id) -> (rank, merged id) for the BPE merges.
class MergeTable {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t id = 0;
  };

  // Sizes the table for `n` entries (load factor at most 1/2) and empties it.
  void Reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Entry{});
    mask_ = cap - 1;
  }
  // Keeps the first (lowest-rank) entry for a duplicated pair, as HF does.
  void Insert(int32_t a, int32_t b, int32_t rank, int32_t id) {
    const uint64_t k = Key(a, b);
    for (uint64_t i = Hash(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == kEmpty) {
        slots_[i] = {k, rank, id};
        return;
      }
      if (slots_[i].key == k) return;
    }
  }
  const Entry* Find(int32_t a, int32_t b) const {
    const uint64_t k = Key(a, b);
    for (uint64_t i = Hash(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return &slots_[i];
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t Key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static uint64_t Hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
  }
  std::vector<Entry> slots_;
  uint64_t mask_ = 0;
};

// Raw token bytes -> id. The keys are not copied: a slot holds an id and 32 bits of its hash, and a
// candidate is confirmed against `strings[id]`, the caller's id -> bytes table, which must be the
// same vector at insertion and lookup.
class BytesIndex {
 public:
  void Reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
  }
  // Adds `strings[id]`; keeps the first id if those bytes are already present.
  void Insert(int32_t id, const std::vector<std::string>& strings) {
    const std::string_view key = strings[id];
    const uint64_t h = HashBytes(key);
    for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s = {static_cast<uint32_t>(h >> 32), id};
        return;
      }
      if (s.tag == static_cast<uint32_t>(h >> 32) && strings[s.id] == key) return;
    }
  }
  // The id whose bytes are `key`, or -1.
  int32_t Find(std::string_view key, const std::vector<std::string>& strings) const {
    return Find(key, HashBytes(key), strings);
  }
  int32_t Find(std::string_view key, uint64_t hash, const std::vector<std::string>& strings) const {
    if (slots_.empty()) return -1;
    const auto tag = static_cast<uint32_t>(hash >> 32);
    for (uint64_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.tag == tag && strings[s.id] == key) return s.id;
    }
  }

 private:
  struct Slot {
    uint32_t tag = 0;
    int32_t id = -1;
  };
  std::vector<Slot> slots_;
  uint64_t mask_ = 0;
};

}  // namespace r1::tok
