#include "core/memory.h"

#include <malloc.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <climits>

namespace r1 {

uint64_t PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

void KeepFreedMemoryForReuse() {
  mallopt(M_MMAP_MAX, 0);                // no mmap()ed chunks: everything from the heap
  mallopt(M_TRIM_THRESHOLD, INT_MAX);    // never shrink the heap
  // One arena for all threads: buffers allocated on OpenMP worker threads otherwise come from
  // per-thread arenas whose heaps are unmapped as soon as they empty, and fault back in the next
  // step (~4,000 page faults per 10 s of moe-small training; 40 with this). Scratch buffers keep
  // off this arena's lock through ScratchCache.
  mallopt(M_ARENA_MAX, 1);
}

namespace ScratchCache {
namespace {

constexpr std::align_val_t kAlign{64};
constexpr int kMinShift = 6;  // 64-byte blocks at least
constexpr int kMaxShift = std::countr_zero(kMaxBlockBytes);
static_assert(std::has_single_bit(kMaxBlockBytes));
constexpr int kClasses = kMaxShift - kMinShift + 1;
constexpr int kSlots = 32;  // free blocks kept per size class

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCache = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kCache = false;
#else
constexpr bool kCache = true;
#endif
#else
constexpr bool kCache = true;
#endif

// The size class of a request: blocks of 2^(kMinShift + class) bytes.
int ClassOf(size_t bytes) {
  const int shift = bytes <= (size_t{1} << kMinShift) ? kMinShift : std::bit_width(bytes - 1);
  return shift - kMinShift;
}

struct Cache {
  std::array<std::array<void*, kSlots>, kClasses> blocks{};
  std::array<int, kClasses> count{};
  size_t bytes = 0;
  ~Cache();
};

// Set once this thread's cache is destroyed: scratch vectors that outlive it (thread_local ones
// constructed before it) then free straight to the C allocator.
thread_local bool cache_gone = false;
thread_local Cache cache;

Cache::~Cache() {
  for (int c = 0; c < kClasses; ++c)
    for (int i = 0; i < count[c]; ++i) ::operator delete (blocks[c][i], size_t{1} << (kMinShift + c), kAlign);
  count = {};
  bytes = 0;
  cache_gone = true;
}

// Blocks the cache does not take are allocated at their exact size (under AddressSanitizer, so
// that it still sees an overrun past the end of a vector).
bool Uncached(size_t bytes) { return !kCache || bytes > kMaxBlockBytes; }

}  // namespace

void* Allocate(size_t bytes) {
  if (Uncached(bytes)) return ::operator new(bytes, kAlign);
  const int c = ClassOf(bytes);
  const size_t size = size_t{1} << (kMinShift + c);
  if (!cache_gone) {
    Cache& k = cache;
    if (k.count[c] > 0) {
      k.bytes -= size;
      return k.blocks[c][--k.count[c]];
    }
  }
  return ::operator new(size, kAlign);
}

void Deallocate(void* p, size_t bytes) noexcept {
  if (p == nullptr) return;
  if (Uncached(bytes)) {
    ::operator delete(p, bytes, kAlign);
    return;
  }
  const int c = ClassOf(bytes);
  const size_t size = size_t{1} << (kMinShift + c);
  if (!cache_gone) {
    Cache& k = cache;
    if (k.count[c] < kSlots && k.bytes + size <= kMaxCachedBytes) {
      k.blocks[c][k.count[c]++] = p;
      k.bytes += size;
      return;
    }
  }
  ::operator delete(p, size, kAlign);
}

bool Enabled() { return kCache; }

size_t CachedBytes() { return kCache && !cache_gone ? cache.bytes : 0; }

}  // namespace ScratchCache
}  // namespace r1
