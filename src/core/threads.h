// One threading model for the whole engine: OpenMP (OpenBLAS is the OpenMP build, so BLAS
// calls share the same pool and never oversubscribe the cores).
#pragma once

namespace r1 {

// Sets the number of threads used by kernels and BLAS. n <= 0 means all cores.
void SetNumThreads(int n);
int NumThreads();
// Cores the process may run on.
int HardwareThreads();

}  // namespace r1
