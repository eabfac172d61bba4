#include "kernels/norm.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/threads.h"

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own "undefined" vectors (GCC bug
// 105593; see matmul.cc).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace r1::kernels {
namespace {

// Rows per group of the vectorized sums: one double lane per row.
constexpr int64_t kLanes = 8;

// Work (T·C) from which a norm runs on all threads.
constexpr int64_t kParallelWork = int64_t{1} << 16;

#if defined(__AVX512F__)
// Whether 8 rows of C floats can be gathered with 32-bit offsets.
bool Gatherable(int64_t C) { return C * kLanes < (int64_t{1} << 31); }

// The 32-bit element offsets of the 8 rows of a group, C apart.
__m256i RowOffsets(int64_t C) {
  return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int>(C)));
}

// ss[i] = Σ_c x[i][c]² for the 8 rows of x at stride C, each summed in double in column order —
// the scalar loop's exact sequence of roundings, 8 rows per instruction (a float squared is exact
// in double, so the FMA rounds exactly where the scalar add does).
void SumSquares8(const float* x, int64_t C, double* ss) {
  const __m256i idx = RowOffsets(C);
  __m512d acc = _mm512_setzero_pd();
  for (int64_t c = 0; c < C; ++c) {
    const __m512d v = _mm512_cvtps_pd(_mm256_i32gather_ps(x + c, idx, 4));
    acc = _mm512_fmadd_pd(v, v, acc);
  }
  _mm512_storeu_pd(ss, acc);
}

// dot[i] = Σ_c (w[c]·dy[i][c])·x[i][c] in double, column order, as the scalar loop rounds it
// (the first product is exact; the second is fused into the add).
void WeightedDots8(const float* x, const float* dy, const float* w, int64_t C, double* dot) {
  const __m256i idx = RowOffsets(C);
  __m512d acc = _mm512_setzero_pd();
  for (int64_t c = 0; c < C; ++c) {
    const __m512d g = _mm512_cvtps_pd(_mm256_i32gather_ps(dy + c, idx, 4));
    const __m512d xv = _mm512_cvtps_pd(_mm256_i32gather_ps(x + c, idx, 4));
    acc = _mm512_fmadd_pd(_mm512_mul_pd(_mm512_set1_pd(static_cast<double>(w[c])), g), xv, acc);
  }
  _mm512_storeu_pd(dot, acc);
}
#endif

double SumSquares(const float* xr, int64_t C) {
  double ss = 0.0;  // wide accumulator: C can be 7168
  for (int64_t c = 0; c < C; ++c) ss += static_cast<double>(xr[c]) * xr[c];
  return ss;
}

double WeightedDot(const float* xr, const float* g, const float* w, int64_t C) {
  double dot = 0.0;  // Σ_c (w⊙dy)_c x_c
  for (int64_t c = 0; c < C; ++c) dot += static_cast<double>(w[c]) * g[c] * xr[c];
  return dot;
}

}  // namespace

void RmsNorm(const float* x, const float* w, int64_t T, int64_t C, float eps, float* out,
             float* rstd) {
  // Groups of kLanes rows (then single rows) are independent: each row's sum, then its output.
  const int64_t groups = (T + kLanes - 1) / kLanes;
  ParallelFor(groups, T * C >= kParallelWork, [&](int64_t gi) {
    const int64_t t0 = gi * kLanes, n = std::min(kLanes, T - t0);
    double ss[kLanes];
#if defined(__AVX512F__)
    if (n == kLanes && Gatherable(C)) SumSquares8(x + t0 * C, C, ss);
    else
#endif
      for (int64_t i = 0; i < n; ++i) ss[i] = SumSquares(x + (t0 + i) * C, C);
    for (int64_t i = 0; i < n; ++i) {
      const float* xr = x + (t0 + i) * C;
      float* yr = out + (t0 + i) * C;
      const float r = static_cast<float>(1.0 / std::sqrt(ss[i] / static_cast<double>(C) + eps));
      for (int64_t c = 0; c < C; ++c) yr[c] = w[c] * (xr[c] * r);
      if (rstd) rstd[t0 + i] = r;
    }
  });
}

void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy, int64_t T, int64_t C,
                     float* dx, float* dw) {
  // dx row by row (groups of kLanes rows for the dots), then dw column by column, each column
  // summed over the rows in order: the bits of the plain row loop, on all threads.
  const int64_t groups = (T + kLanes - 1) / kLanes;
  const bool parallel = T * C >= kParallelWork;
  ParallelFor(groups, parallel, [&](int64_t gi) {
    const int64_t t0 = gi * kLanes, n = std::min(kLanes, T - t0);
    double dot[kLanes];
#if defined(__AVX512F__)
    if (n == kLanes && Gatherable(C)) WeightedDots8(x + t0 * C, dy + t0 * C, w, C, dot);
    else
#endif
      for (int64_t i = 0; i < n; ++i) dot[i] = WeightedDot(x + (t0 + i) * C, dy + (t0 + i) * C, w, C);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = t0 + i;
      const float* xr = x + t * C;
      const float* g = dy + t * C;
      const float r = rstd[t];
      const float k = static_cast<float>(dot[i] / static_cast<double>(C)) * r * r * r;
      float* dxr = dx + t * C;
      for (int64_t c = 0; c < C; ++c) dxr[c] += r * w[c] * g[c] - xr[c] * k;
    }
  });
  // Columns in blocks of 64 (whole cache lines of dw per thread).
  ParallelFor((C + 63) / 64, parallel, [&](int64_t b) {
    const int64_t c0 = b * 64, c1 = std::min(C, c0 + 64);
    for (int64_t t = 0; t < T; ++t) {
      const float* xr = x + t * C;
      const float* g = dy + t * C;
      const float r = rstd[t];
      for (int64_t c = c0; c < c1; ++c) dw[c] += g[c] * xr[c] * r;
    }
  });
}

}  // namespace r1::kernels
