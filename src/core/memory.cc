#include "core/memory.h"

#include <malloc.h>

#include <climits>

namespace r1 {

void KeepFreedMemoryForReuse() {
  mallopt(M_MMAP_MAX, 0);                // no mmap()ed chunks: everything from the heap
  mallopt(M_TRIM_THRESHOLD, INT_MAX);    // never shrink the heap
  // One arena for all threads: buffers allocated on OpenMP worker threads otherwise come from
  // per-thread arenas whose heaps are unmapped as soon as they empty, and fault back in the next
  // step (~4,000 page faults per 10 s of moe-small training; 40 with this).
  mallopt(M_ARENA_MAX, 1);
}

}  // namespace r1
