#include "kernels/loss.h"

#include <algorithm>
#include <cmath>

namespace r1::kernels {

double CrossEntropyForwardBackward(float* logits, const int32_t* targets, int64_t T, int64_t V, float grad_scale,
                                   int64_t* n_valid) {
  double total = 0.0;
  int64_t n = 0;
#pragma omp parallel for schedule(static) reduction(+ : total, n) if (T * V >= (1 << 16))
  for (int64_t t = 0; t < T; ++t) {
    float* row = logits + t * V;
    if (targets[t] < 0) {
      std::fill(row, row + V, 0.0f);
      continue;
    }
    const float m = *std::max_element(row, row + V);
    double sum = 0.0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v] - m));
    const double lse = m + std::log(sum);
    total += lse - row[targets[t]];
    ++n;
    for (int64_t v = 0; v < V; ++v) row[v] = static_cast<float>(std::exp(row[v] - lse)) * grad_scale;
    row[targets[t]] -= grad_scale;
  }
  if (n_valid) *n_valid = n;
  return total;
}

}  // namespace r1::kernels
