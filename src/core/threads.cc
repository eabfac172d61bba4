#include "core/threads.h"

#include <omp.h>

#include <thread>

namespace r1 {

void SetNumThreads(int n) {
  if (n <= 0) n = HardwareThreads();
  omp_set_num_threads(n);
}

int NumThreads() { return omp_get_max_threads(); }

bool ParallelAvailable() { return !omp_in_parallel() && omp_get_max_threads() > 1; }

int HardwareThreads() {
  const int n = omp_get_num_procs();
  return n > 0 ? n : static_cast<int>(std::thread::hardware_concurrency());
}

}  // namespace r1
