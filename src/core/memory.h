// How the C allocator treats big buffers in long batch jobs.
#pragma once

#include <cstddef>
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

// Allocator for scratch buffers of the model's forward and backward passes. Two differences from
// std::allocator:
//  * Storage starts on a 64-byte cache line. The GEMV kernels read an f32 input in place only when
//    it starts on a line (a load that straddles two lines costs two load slots); a buffer from plain
//    malloc starts 16 bytes in, so every product on it copied its inputs first.
//  * Value-less construction leaves elements uninitialized: ScratchVector<float>(n) does not zero
//    its n floats (resize(n) neither). For buffers every element of which is written before it is
//    read; ScratchVector<float>(n, 0.0f) still zeroes. In batched decode the zero fills of a step's
//    temporaries were ~5 % of the time.
template <class T>
struct ScratchAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  ScratchAllocator() = default;
  template <class U>
  ScratchAllocator(const ScratchAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t n) noexcept { ::operator delete(p, n * sizeof(T), kAlign); }
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

}  // namespace r1
