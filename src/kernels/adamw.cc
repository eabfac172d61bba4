#include "kernels/adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threads.h"

namespace r1::kernels {

void AdamWStep(float* p, float* g, float* m, float* v, int64_t n, const AdamWParams& a) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(a.beta1), static_cast<double>(a.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(a.beta2), static_cast<double>(a.step));
  const float inv_bc1 = static_cast<float>(1.0 / bc1), inv_bc2 = static_cast<float>(1.0 / bc2);
  // Element-wise; blocks of 16 Ki elements per work item.
  constexpr int64_t kBlock = int64_t{1} << 14;
  ParallelFor((n + kBlock - 1) / kBlock, n >= (1 << 16), [&](int64_t b) {
    const int64_t hi = std::min(n, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < hi; ++i) {
      const float gi = g[i] * a.grad_scale;
      g[i] = 0.0f;
      m[i] = a.beta1 * m[i] + (1.0f - a.beta1) * gi;
      v[i] = a.beta2 * v[i] + (1.0f - a.beta2) * gi * gi;
      const float mh = m[i] * inv_bc1, vh = v[i] * inv_bc2;
      p[i] -= a.lr * (mh / (std::sqrt(vh) + a.eps) + a.weight_decay * p[i]);
    }
  });
}

double SumOfSquares(const float* x, int64_t n) {
  constexpr int64_t kBlock = int64_t{1} << 15;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks));
  ParallelFor(blocks, n >= (1 << 18), [&](int64_t b) {
    const int64_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
    double acc[8] = {};  // eight independent sums: vectorizes and hides the add latency
    int64_t i = lo;
    for (; i + 8 <= hi; i += 8)
      for (int k = 0; k < 8; ++k) acc[k] += static_cast<double>(x[i + k]) * static_cast<double>(x[i + k]);
    for (; i < hi; ++i) acc[0] += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    partial[static_cast<size_t>(b)] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace r1::kernels
