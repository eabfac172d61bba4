// exp (and the max that shifts it) over arrays of floats, 16 lanes at a time with AVX-512
// (scalar code elsewhere).
//
// exp(x) = 2^n · e^r with n = round(x·log2 e) and r = x − n·ln 2 (ln 2 split in a high part exact
// in float and a low part, so r is exact to ~1 ulp), |r| ≤ ln2/2; e^r by its degree-7 Taylor
// polynomial (truncation < 6e-9 relative); 2^n applied with vscalefps, which also gives 0 below
// the float range and +inf above it. Measured against std::exp in double: ≤ 2 ulp over the whole
// float range (tests/kernels/vec_exp_test.cc). NaN stays NaN; −inf gives 0.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// GCC 12 warns inside its own headers about the "undefined" pass-through operand of unmasked
// AVX-512 intrinsics (a false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace r1::kernels {

#if defined(__AVX512F__)
inline __m512 Exp16(__m512 x) {
  // Outside [-110, 89] the result is 0 or +inf anyway; clamping keeps n in int range. max/min
  // return their second operand when either is NaN, so NaN passes through.
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-110.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln2 high: 16 bits
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-06f), r);  // ln2 − high
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}
#endif

// out[i] = exp(x[i] − shift) · scale; returns Σ exp(x[i] − shift) (before scaling), summed in
// double. out may alias x; out == nullptr only sums.
inline double ExpShifted(const float* x, int64_t n, float shift, float scale, float* out) {
  double sum = 0.0;
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 vs = _mm512_set1_ps(shift), vk = _mm512_set1_ps(scale);
  __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
  auto add = [&](__m512 e) {  // the 16 floats into the two 8-lane double sums
    acc0 = _mm512_add_pd(acc0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    acc1 = _mm512_add_pd(acc1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  };
  for (; i + 16 <= n; i += 16) {
    const __m512 e = Exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vs));
    add(e);
    if (out != nullptr) _mm512_storeu_ps(out + i, _mm512_mul_ps(e, vk));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 e = _mm512_maskz_mov_ps(m, Exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vs)));
    add(e);
    if (out != nullptr) _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(e, vk));
    i = n;
  }
  sum = _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
#endif
  for (; i < n; ++i) {
    const float e = std::exp(x[i] - shift);
    sum += static_cast<double>(e);
    if (out != nullptr) out[i] = e * scale;
  }
  return sum;
}

// The largest of x[0..n) (−inf for n = 0), 16 lanes at a time; NaNs are skipped (a row with one
// still gives NaN through ExpShifted). The softmax shift for cross-entropy, KL and sampling.
inline float MaxOf(const float* x, int64_t n) {
  float m = -INFINITY;
  int64_t i = 0;
#if defined(__AVX512F__)
  if (n >= 16) {
    __m512 acc = _mm512_set1_ps(-INFINITY);
    for (; i + 16 <= n; i += 16) acc = _mm512_max_ps(_mm512_loadu_ps(x + i), acc);
    m = _mm512_reduce_max_ps(acc);
  }
#endif
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

#if defined(__AVX512F__)
// expf for 16 lanes with exactly the C library's results: glibc's expf (its FMA build, which it
// selects on every CPU with AVX-512) evaluated in the same order, 8 doubles at a time:
//   k = round(x·32/ln2), r = x·32/ln2 − k,  exp(x) = 2^(k/32) · (1 + C2·r + C1·r² + C0·r³),
// 2^(k/32) from a 32-entry table of 2^(i/32) with k/32's integer part added to the exponent bits.
// Where a kernel must keep std::exp's bits (SwiGLU: training tests compare against a reference
// within the f32 noise, and any change of rounding moves it), this is the fast path. Lanes with
// |x| >= 88 or NaN take std::exp itself. tests/kernels/vec_exp_test.cc compares every lane against
// std::exp bit for bit.
struct ExpfTable {
  alignas(64) uint64_t t[32];
  ExpfTable() {
    for (int i = 0; i < 32; ++i) {  // bits of 2^(i/32), correctly rounded, minus i << 47
      const double v = static_cast<double>(exp2l(static_cast<long double>(i) / 32.0L));
      uint64_t b;
      __builtin_memcpy(&b, &v, 8);
      t[i] = b - (static_cast<uint64_t>(i) << 47);
    }
  }
};
inline const ExpfTable& ExpfTab() {
  static const ExpfTable tab;
  return tab;
}

// The table in four registers, loaded once per loop: a function-local static's guard inside a
// loop is a possible call, around which the compiler spilled every live vector register (SwiGLU ran
// at ~1.07 ns an element on a Zen 4 core with the table fetched per call).
struct ExpfLanes {
  __m512i t0, t1, t2, t3;
};
inline ExpfLanes LoadExpfLanes() {
  const uint64_t* tab = ExpfTab().t;
  return {_mm512_load_si512(tab), _mm512_load_si512(tab + 8), _mm512_load_si512(tab + 16), _mm512_load_si512(tab + 24)};
}

inline __m256 ExpAsLibm8(__m256 xf, const ExpfLanes& tab) {
  const __m512d xd = _mm512_cvtps_pd(xf);
  const __m512d inv_ln2_n = _mm512_set1_pd(0x1.71547652b82fep+0 * 32), shift = _mm512_set1_pd(0x1.8p+52);
  const __m512d kds = _mm512_fmadd_pd(inv_ln2_n, xd, shift);
  const __m512i ki = _mm512_castpd_si512(kds);
  const __m512d kd = _mm512_sub_pd(kds, shift);
  const __m512d r = _mm512_fmsub_pd(inv_ln2_n, xd, kd);
  const __m512i idx = _mm512_and_si512(ki, _mm512_set1_epi64(31));
  // The table lookup as two two-register permutes and a blend on index bit 4 instead of a gather:
  // ~20 % less time a lane on AMD Zen 4 (0.93-1.27 -> 0.78-1.00 ns, side by side in one process).
  const __m512i lo = _mm512_permutex2var_epi64(tab.t0, idx, tab.t1);
  const __m512i hi = _mm512_permutex2var_epi64(tab.t2, idx, tab.t3);
  const __mmask8 upper = _mm512_test_epi64_mask(idx, _mm512_set1_epi64(16));
  const __m512i t = _mm512_add_epi64(_mm512_mask_blend_epi64(upper, lo, hi), _mm512_slli_epi64(ki, 47));
  const __m512d z = _mm512_fmadd_pd(_mm512_set1_pd(0x1.c6af84b912394p-5 / 32 / 32 / 32), r,
                                    _mm512_set1_pd(0x1.ebfce50fac4f3p-3 / 32 / 32));
  const __m512d r2 = _mm512_mul_pd(r, r);
  __m512d y = _mm512_fmadd_pd(_mm512_set1_pd(0x1.62e42ff0c52d6p-1 / 32), r, _mm512_set1_pd(1.0));
  y = _mm512_fmadd_pd(z, r2, y);
  return _mm512_cvtpd_ps(_mm512_mul_pd(y, _mm512_castsi512_pd(t)));
}

// The lanes ExpAsLibm8 does not cover: |x| >= 88 (top 12 bits of the magnitude >= those of
// 88.0f), inf or NaN. The library's own path gives them.
inline __mmask16 ExpfSpecialLanes(__m512 x) {
  const __m512i top = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(x), 20), _mm512_set1_epi32(0x7ff));
  return _mm512_cmpgt_epi32_mask(top, _mm512_set1_epi32(0x42a));
}

// ExpAsLibm8 on 16 lanes, right except in ExpfSpecialLanes(x): for loops that hand blocks with
// such lanes to std::exp out of line, keeping calls out of the loop.
inline __m512 ExpAsLibm16Fast(__m512 x, const ExpfLanes& tab) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(ExpAsLibm8(_mm512_castps512_ps256(x), tab)),
                            ExpAsLibm8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)), tab), 1);
}

inline __m512 ExpAsLibm16(__m512 x) {
  __m512 e = ExpAsLibm16Fast(x, LoadExpfLanes());
  const __mmask16 special = ExpfSpecialLanes(x);
  if (special) {
    alignas(64) float xs[16], es[16];
    _mm512_store_ps(xs, x);
    _mm512_store_ps(es, e);
    for (int i = 0; i < 16; ++i)
      if (special >> i & 1) es[i] = std::exp(xs[i]);
    e = _mm512_load_ps(es);
  }
  return e;
}
#endif

}  // namespace r1::kernels

#pragma GCC diagnostic pop
