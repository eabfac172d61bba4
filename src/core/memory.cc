#include "core/memory.h"

#include <malloc.h>

#include <climits>

namespace r1 {

void KeepFreedMemoryForReuse() {
  mallopt(M_MMAP_MAX, 0);                // no mmap()ed chunks: everything from the heap
  mallopt(M_TRIM_THRESHOLD, INT_MAX);    // never shrink the heap
}

}  // namespace r1
