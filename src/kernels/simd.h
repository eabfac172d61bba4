// x86 vector intrinsics for the kernels' AVX-512 paths (each keeps a plain C++ fallback).
//
// GCC 12's AVX-512 headers initialize their "undefined" vectors from themselves, which
// -Wmaybe-uninitialized / -Wuninitialized then report at every inlined use (GCC bug 105593); the
// code is fine. The two warnings are off from here to the end of the including file, so include
// this header in .cc files only.
#pragma once

#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#if defined(__AVX512F__)
#include <algorithm>
#include <cstdint>

namespace r1::kernels {

// w[q] lane j = the old w[j] lane q: unpacks of 32- and 64-bit elements within 128-bit lanes,
// then a 4 x 4 transpose of the 128-bit lanes of each set of four vectors.
inline void Transpose16(__m512i w[16]) {
  __m512i a[16], t[16];
  for (int i = 0; i < 16; i += 2) {
    a[i] = _mm512_unpacklo_epi32(w[i], w[i + 1]);
    a[i + 1] = _mm512_unpackhi_epi32(w[i], w[i + 1]);
  }
  // t[4i + k], 128-bit lane L: rows 4i..4i+3 of element 4L + k
  for (int i = 0; i < 16; i += 4) {
    t[i] = _mm512_unpacklo_epi64(a[i], a[i + 2]);
    t[i + 1] = _mm512_unpackhi_epi64(a[i], a[i + 2]);
    t[i + 2] = _mm512_unpacklo_epi64(a[i + 1], a[i + 3]);
    t[i + 3] = _mm512_unpackhi_epi64(a[i + 1], a[i + 3]);
  }
  for (int k = 0; k < 4; ++k) {
    const __m512i c0 = _mm512_shuffle_i32x4(t[k], t[4 + k], 0x44), c1 = _mm512_shuffle_i32x4(t[k], t[4 + k], 0xEE);
    const __m512i c2 = _mm512_shuffle_i32x4(t[8 + k], t[12 + k], 0x44),
                  c3 = _mm512_shuffle_i32x4(t[8 + k], t[12 + k], 0xEE);
    w[k] = _mm512_shuffle_i32x4(c0, c2, 0x88);
    w[4 + k] = _mm512_shuffle_i32x4(c0, c2, 0xDD);
    w[8 + k] = _mm512_shuffle_i32x4(c1, c3, 0x88);
    w[12 + k] = _mm512_shuffle_i32x4(c1, c3, 0xDD);
  }
}

inline __mmask16 FirstLanes(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << std::max<int64_t>(n, 0)) - 1);
}

}  // namespace r1::kernels
#endif
