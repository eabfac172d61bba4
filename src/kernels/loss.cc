#include "kernels/loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threads.h"
#include "kernels/vec_exp.h"

namespace r1::kernels {

double CrossEntropyForwardBackward(float* logits, const int32_t* targets, int64_t T, int64_t V, float grad_scale,
                                   int64_t* n_valid) {
  // Per-row losses summed in row order afterwards: the same total for any thread count (an
  // OpenMP reduction adds the threads' partial sums in whatever order they finish).
  std::vector<double> row_loss(static_cast<size_t>(T), 0.0);
  ParallelFor(T, T * V >= (1 << 16), [&](int64_t t) {
    float* row = logits + t * V;
    if (targets[t] < 0) {
      std::fill(row, row + V, 0.0f);
      return;
    }
    const float m = MaxOf(row, V);
    const float x_target = row[targets[t]];
    // One exp per logit, written in place: p = exp(x − m) / sum.
    const double sum = ExpShifted(row, V, m, 1.0f, row);
    row_loss[static_cast<size_t>(t)] = m + std::log(sum) - x_target;
    const float scale = static_cast<float>(grad_scale / sum);
    for (int64_t v = 0; v < V; ++v) row[v] *= scale;
    row[targets[t]] -= grad_scale;
  });
  double total = 0.0;
  int64_t n = 0;
  for (int64_t t = 0; t < T; ++t) {
    total += row_loss[static_cast<size_t>(t)];
    n += targets[t] >= 0;
  }
  if (n_valid) *n_valid = n;
  return total;
}

}  // namespace r1::kernels
