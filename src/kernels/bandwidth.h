// Measured memory read bandwidth: the roof a memory-bound decode step runs against.
#pragma once

#include <cstddef>

namespace r1::kernels {

// Streams `bytes` of memory (read-only, summing floats) `reps` times with the current OpenMP
// thread count; returns the median GB/s (1e9 bytes/s).
double MeasureReadBandwidth(size_t bytes = size_t{1} << 29, int reps = 5);

}  // namespace r1::kernels
