// Sums along a row of floats in double, in one fixed order that depends only on the row's length
// C, so a row's result does not depend on the rows it is computed with or the thread count: 16
// partial sums, column c into sum c mod 16 (in column order), then sums i and i + 8 added, then the
// 8 as ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)). The AVX-512 build runs them as two
// vectors of 8 doubles; the scalar build runs the same sequence. For the kernels' .cc files
// (RMSNorm's backward, the MoE backward's routing-weight gradient).
#pragma once

#include <cstdint>

#if defined(__AVX512F__)
#include "kernels/simd.h"
#endif

namespace r1::kernels::row_sum {

inline double Tree8(const double* s) { return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7])); }

#if defined(__AVX512F__)
inline __m512d Widen(const float* p, int64_t n) {  // min(n, 8) floats; lanes past n are 0
  return _mm512_cvtps_pd(n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskz_loadu_ps(static_cast<__mmask8>((1u << n) - 1), p));
}

// The row sum, fused: fma8(c, n, acc) adds columns c .. c + min(n, 8) of the row (n = C − c, the
// columns left) to acc, the 8 doubles of one partial-sum vector.
template <class Fma8>
double RowSum(int64_t C, Fma8 fma8) {
  __m512d a[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
  for (int64_t c = 0; c < C; c += 8) a[(c / 8) % 2] = fma8(c, C - c, a[(c / 8) % 2]);
  alignas(64) double s[8];
  _mm512_store_pd(s, _mm512_add_pd(a[0], a[1]));
  return Tree8(s);
}
#else
// The same sums one column at a time: fma1(c, acc) adds column c to acc.
template <class Fma1>
double RowSum(int64_t C, Fma1 fma1) {
  double a[16] = {};
  for (int64_t c = 0; c < C; ++c) a[c % 16] = fma1(c, a[c % 16]);
  for (int i = 0; i < 8; ++i) a[i] += a[i + 8];
  return Tree8(a);
}
#endif

}  // namespace r1::kernels::row_sum
