#include "kernels/matmul.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

// GCC 12's AVX-512 headers initialize their "undefined" vectors from themselves, which
// -Wmaybe-uninitialized reports at every inlined use (GCC bug 105593); the code is fine.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace r1::kernels {
namespace {

#if defined(__AVX512F__)
// Horizontal sum through memory: GCC 12's _mm512_reduce_add_ps trips -Wmaybe-uninitialized.
inline float HSum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float s = 0.0f;
  for (float l : lanes) s += l;
  return s;
}
#endif

// Σ_k x[k]·w[k] for one row, by dtype. The AVX-512 paths convert 16 weights at a time to f32;
// fp8 goes through the 256-entry table (gather), and every 128 columns take the block scale.
float DotF32(const float* __restrict x, const float* __restrict w, int64_t K) {
  int64_t k = 0;
  float acc = 0.0f;
#if defined(__AVX512F__)
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  for (; k + 32 <= K; k += 32) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), _mm512_loadu_ps(w + k), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(w + k + 16), a1);
  }
  acc = HSum(_mm512_add_ps(a0, a1));
#endif
  for (; k < K; ++k) acc += x[k] * w[k];
  return acc;
}

float DotBf16(const float* __restrict x, const uint16_t* __restrict w, int64_t K) {
  int64_t k = 0;
  float acc = 0.0f;
#if defined(__AVX512F__)
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  for (; k + 32 <= K; k += 32) {
    const __m512i w0 = _mm512_slli_epi32(
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k))), 16);
    const __m512i w1 = _mm512_slli_epi32(
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k + 16))), 16);
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), _mm512_castsi512_ps(w0), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 16), _mm512_castsi512_ps(w1), a1);
  }
  acc = HSum(_mm512_add_ps(a0, a1));
#endif
  for (; k < K; ++k) acc += x[k] * Bf16ToF32(w[k]);
  return acc;
}

// One fp8 row segment of at most 128 columns (one scale block), unscaled.
float DotFp8Segment(const float* __restrict x, const uint8_t* __restrict w, int64_t n) {
  int64_t k = 0;
  float acc = 0.0f;
#if defined(__AVX512F__)
  const float* table = kFp8E4M3ToF32.data();
  __m512 a0 = _mm512_setzero_ps();
  for (; k + 16 <= n; k += 16) {
    const __m512i codes =
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + k)));
    const __m512 wv = _mm512_i32gather_ps(codes, table, 4);
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), wv, a0);
  }
  acc = HSum(a0);
#endif
  for (; k < n; ++k) acc += x[k] * Fp8E4M3ToF32(w[k]);
  return acc;
}

float DotFp8(const float* __restrict x, const uint8_t* __restrict w, const float* srow, int64_t K) {
  float acc = 0.0f;
  for (int64_t k0 = 0, b = 0; k0 < K; k0 += kFp8Block, ++b) {
    const int64_t n = std::min<int64_t>(kFp8Block, K - k0);
    acc += DotFp8Segment(x + k0, w + k0, n) * (srow ? srow[b] : 1.0f);
  }
  return acc;
}

}  // namespace

void GemvRows(const float* x, const TensorView& w, int64_t row_begin, int64_t row_end, float* out,
              bool accumulate) {
  const int64_t K = w.cols();
  for (int64_t n = row_begin; n < row_end; ++n) {
    float v = 0.0f;
    switch (w.dtype) {
      case DType::kF32: v = DotF32(x, static_cast<const float*>(w.data) + n * K, K); break;
      case DType::kBF16: v = DotBf16(x, static_cast<const uint16_t*>(w.data) + n * K, K); break;
      case DType::kF8E4M3: {
        const float* srow = w.scale_inv ? w.scale_inv + (n / kFp8Block) * w.scale_cols() : nullptr;
        v = DotFp8(x, static_cast<const uint8_t*>(w.data) + n * K, srow, K);
        break;
      }
    }
    out[n] = accumulate ? out[n] + v : v;
  }
}

void Gemv(const float* x, const TensorView& w, float* out, bool accumulate) {
  const int64_t N = w.rows();
  // Small matrices are not worth waking the team.
  const bool parallel = N * w.cols() >= (1 << 15) && omp_get_max_threads() > 1 && !omp_in_parallel();
  if (!parallel) {
    GemvRows(x, w, 0, N, out, accumulate);
    return;
  }
  constexpr int64_t kChunk = 16;
#pragma omp parallel for schedule(static)
  for (int64_t n0 = 0; n0 < N; n0 += kChunk)
    GemvRows(x, w, n0, std::min(N, n0 + kChunk), out, accumulate);
}

void MatMul(const float* x, int64_t T, const TensorView& w, float* out, bool accumulate) {
  const int64_t N = w.rows(), K = w.cols();
  if (T == 1) {
    Gemv(x, w, out, accumulate);
    return;
  }
  if (w.dtype == DType::kF32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T), static_cast<int>(N),
                static_cast<int>(K), 1.0f, x, static_cast<int>(K), w.f32(), static_cast<int>(K),
                accumulate ? 1.0f : 0.0f, out, static_cast<int>(N));
    return;
  }
  // Dequantize a panel of rows of w at a time and multiply it in.
  const int64_t panel = std::max<int64_t>(1, std::min<int64_t>(N, (1 << 20) / std::max<int64_t>(K, 1)));
  std::vector<float> wf(static_cast<size_t>(panel * K));
  for (int64_t n0 = 0; n0 < N; n0 += panel) {
    const int64_t rows = std::min(panel, N - n0);
#pragma omp parallel for schedule(static) if (rows * K >= (1 << 16))
    for (int64_t r = 0; r < rows; ++r) w.RowToF32(n0 + r, wf.data() + r * K);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T),
                static_cast<int>(rows), static_cast<int>(K), 1.0f, x, static_cast<int>(K),
                wf.data(), static_cast<int>(K), accumulate ? 1.0f : 0.0f, out + n0,
                static_cast<int>(N));
  }
}

}  // namespace r1::kernels
