// How the C allocator treats big buffers in long batch jobs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

namespace r1 {

// A training step allocates and frees the same large activation and gradient buffers every step.
// glibc serves big allocations with fresh mmap()s and unmaps them on free, so every step paid
// page faults and kernel page zeroing for its whole working set: a moe-small training step
// (8 x 256) ran at 226 tokens/s that way and 345 with this (same binary, side by side). After this
// call malloc takes everything from one heap, shared by all threads, and keeps freed memory for
// reuse instead of returning it to the system. Call it before any worker thread allocates. For
// batch jobs only (training, RL, evaluation, the recipe): the process stays at its peak size until
// it exits, which a server must not do.
void KeepFreedMemoryForReuse();

// The machine's physical memory in bytes (0 when unknown).
uint64_t PhysicalMemoryBytes();

// Allocator for scratch buffers of the model's forward and backward passes. Two differences from
// std::allocator:
//  * Storage starts on a 64-byte cache line. The GEMV kernels read an f32 input in place only when
//    it starts on a line (a load that straddles two lines costs two load slots); a buffer from plain
//    malloc starts 16 bytes in, so every product on it copied its inputs first.
//  * Value-less construction leaves elements uninitialized: ScratchVector<float>(n) does not zero
//    its n floats (resize(n) neither). For buffers every element of which is written before it is
//    read; ScratchVector<float>(n, 0.0f) still zeroes. In batched decode the zero fills of a step's
//    temporaries were ~5 % of the time.
//  * Blocks of up to ScratchCache::kMaxBlockBytes come from a per-thread cache (below) instead of
//    malloc, whose one shared arena (KeepFreedMemoryForReuse) makes threads that allocate at the
//    same time wait on its lock.
template <class T>
struct ScratchAllocator {
  using value_type = T;
  ScratchAllocator() = default;
  template <class U>
  ScratchAllocator(const ScratchAllocator<U>&) noexcept {}
  T* allocate(size_t n);
  void deallocate(T* p, size_t n) noexcept;
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U>
  bool operator==(const ScratchAllocator<U>&) const noexcept {
    return true;
  }
};

template <class T>
using ScratchVector = std::vector<T, ScratchAllocator<T>>;

// Freed scratch blocks kept per thread for that thread's next allocations, without a lock. Sizes are
// rounded up to a power of two (at least 64 bytes), and every block starts on a 64-byte line. Blocks
// above kMaxBlockBytes, and blocks that would take a thread's cache past kMaxCachedBytes, go to and
// from the C allocator directly. A block may be freed by another thread than the one that allocated
// it; it then joins the freeing thread's cache. A thread's cache is released when the thread exits.
//
// Why: batch jobs run the C allocator with a single arena (KeepFreedMemoryForReuse), so two threads
// allocating at once contend on its lock, and glibc's lock puts the waiter to sleep. Each thread of
// a batched GRPO rollout allocates a few dozen temporaries per layer and decode step; on two cores
// the threads went to sleep on that lock ~1,000 times per GRPO step. The cache stops at 256 KiB:
// a training step's activation buffers (megabytes each, few allocations) stay with malloc, which
// does not round their sizes up (with a 4 MiB limit, moe-small's bf16 training peaked 470 MB higher).
// Under AddressSanitizer every block goes straight to the C allocator at its exact size, so that a
// use after free or an overrun past a vector's end is still caught.
namespace ScratchCache {
inline constexpr size_t kMaxBlockBytes = size_t{256} << 10;
inline constexpr size_t kMaxCachedBytes = size_t{8} << 20;
void* Allocate(size_t bytes);
void Deallocate(void* p, size_t bytes) noexcept;
// Whether blocks are cached (not under AddressSanitizer), and the bytes the calling thread's cache
// holds (for tests).
bool Enabled();
size_t CachedBytes();
}  // namespace ScratchCache

template <class T>
T* ScratchAllocator<T>::allocate(size_t n) {
  if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
  return static_cast<T*>(ScratchCache::Allocate(n * sizeof(T)));
}

template <class T>
void ScratchAllocator<T>::deallocate(T* p, size_t n) noexcept {
  ScratchCache::Deallocate(p, n * sizeof(T));
}

}  // namespace r1
