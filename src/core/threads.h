// One threading model for the whole engine: OpenMP (OpenBLAS is the OpenMP build, so BLAS
// calls share the same pool and never oversubscribe the cores).
#pragma once

#include <cstdint>

namespace r1 {

// Sets the number of threads used by kernels and BLAS. n <= 0 means all cores.
void SetNumThreads(int n);
int NumThreads();
// Cores the process may run on.
int HardwareThreads();

// Whether a parallel region opened here would get more than one thread: not already inside one
// (nested regions run on one thread) and more than one thread configured.
bool ParallelAvailable();

enum class Schedule { kStatic, kDynamic };

// f(i) for i in [0, n): over the threads when `worth_it` and ParallelAvailable(), else in a plain
// loop on this thread. An OpenMP region costs libgomp a team even when it runs on one thread (an
// `if (false)` clause still opens one), and a nested region allocates its team under malloc's
// lock, where threads that each run their own work (one rollout chunk per thread) then queue on
// futexes. Code that may run inside a region uses this instead of an `if` clause. Every i must be
// independent of the others: the result may not depend on which thread ran it.
template <class F>
void ParallelFor(int64_t n, bool worth_it, F&& f, Schedule schedule = Schedule::kStatic) {
  if (worth_it && n > 1 && ParallelAvailable()) {
    if (schedule == Schedule::kStatic) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) f(i);
    } else {
#pragma omp parallel for schedule(dynamic, 1)
      for (int64_t i = 0; i < n; ++i) f(i);
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace r1
