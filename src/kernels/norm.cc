#include "kernels/norm.h"

#include <algorithm>
#include <cmath>

#include "core/threads.h"
#include "kernels/row_sum.h"
#include "kernels/simd.h"

namespace r1::kernels {
namespace {

// The row sums below are row_sum::RowSum's (kernels/row_sum.h): one fixed order whatever the
// rows around them or the thread count.
using row_sum::RowSum;
#if defined(__AVX512F__)
using row_sum::Widen;
#endif

// Rows per work item.
constexpr int64_t kRowsPerItem = 8;

// Work (T·C) from which a norm runs on all threads.
constexpr int64_t kParallelWork = int64_t{1} << 16;

#if defined(__AVX512F__)
// Σ_c x_c² (a float squared is exact in double).
double SumSquares(const float* x, int64_t C) {
  return RowSum(C, [&](int64_t c, int64_t n, __m512d acc) {
    const __m512d v = Widen(x + c, n);
    return _mm512_fmadd_pd(v, v, acc);
  });
}

// Σ_c (w_c·dy_c)·x_c (the first product exact in double, the second fused into the add).
double WeightedDot(const float* x, const float* dy, const float* w, int64_t C) {
  return RowSum(C, [&](int64_t c, int64_t n, __m512d acc) {
    return _mm512_fmadd_pd(_mm512_mul_pd(Widen(w + c, n), Widen(dy + c, n)), Widen(x + c, n), acc);
  });
}
#else
double SumSquares(const float* x, int64_t C) {
  return RowSum(C, [&](int64_t c, double acc) { return std::fma(static_cast<double>(x[c]), x[c], acc); });
}

double WeightedDot(const float* x, const float* dy, const float* w, int64_t C) {
  return RowSum(C, [&](int64_t c, double acc) {
    return std::fma(static_cast<double>(w[c]) * dy[c], static_cast<double>(x[c]), acc);
  });
}
#endif

// dw[c] += dy_c·x_c·r for columns [c0, c1) of one row: the one expression both backward paths use,
// so that they round alike.
inline void AddRowToDw(const float* xr, const float* g, float r, int64_t c0, int64_t c1, float* dw) {
  for (int64_t c = c0; c < c1; ++c) dw[c] += g[c] * xr[c] * r;
}

// One row of the backward: dx += r·(w⊙dy) − x·k, and (with dw) dw += dy⊙x·r.
inline void BackwardRow(const float* xr, const float* w, float r, const float* g, int64_t C, float* dxr, float* dw) {
  const float k = static_cast<float>(WeightedDot(xr, g, w, C) / static_cast<double>(C)) * r * r * r;
  for (int64_t c = 0; c < C; ++c) dxr[c] += r * w[c] * g[c] - xr[c] * k;
  if (dw) AddRowToDw(xr, g, r, 0, C, dw);
}

}  // namespace

void RmsNorm(const float* x, const float* w, int64_t T, int64_t C, float eps, float* out,
             float* rstd) {
  const int64_t items = (T + kRowsPerItem - 1) / kRowsPerItem;
  ParallelFor(items, T * C >= kParallelWork, [&](int64_t i) {
    for (int64_t t = i * kRowsPerItem; t < std::min(T, (i + 1) * kRowsPerItem); ++t) {
      const float* xr = x + t * C;
      float* yr = out + t * C;
      const float r = static_cast<float>(1.0 / std::sqrt(SumSquares(xr, C) / static_cast<double>(C) + eps));
      for (int64_t c = 0; c < C; ++c) yr[c] = w[c] * (xr[c] * r);
      if (rstd) rstd[t] = r;
    }
  });
}

void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy, int64_t T, int64_t C,
                     float* dx, float* dw) {
  // dw's columns are each summed over the rows in order. On one thread that is one pass over the
  // rows, dx and dw together; on several, dx row by row and then dw in column blocks.
  const bool split = T * C >= kParallelWork && ParallelAvailable();
  if (!split) {
    for (int64_t t = 0; t < T; ++t) BackwardRow(x + t * C, w, rstd[t], dy + t * C, C, dx + t * C, dw);
    return;
  }
  const int64_t items = (T + kRowsPerItem - 1) / kRowsPerItem;
  ParallelFor(items, true, [&](int64_t i) {
    for (int64_t t = i * kRowsPerItem; t < std::min(T, (i + 1) * kRowsPerItem); ++t)
      BackwardRow(x + t * C, w, rstd[t], dy + t * C, C, dx + t * C, nullptr);
  });
  // Columns in blocks of 64 (whole cache lines of dw per thread).
  ParallelFor((C + 63) / 64, true, [&](int64_t b) {
    const int64_t c0 = b * 64, c1 = std::min(C, c0 + 64);
    for (int64_t t = 0; t < T; ++t) AddRowToDw(x + t * C, dy + t * C, rstd[t], c0, c1, dw);
  });
}

}  // namespace r1::kernels
