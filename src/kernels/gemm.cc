#include "kernels/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

namespace r1::kernels {
namespace {

void Blas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
              beta, c, static_cast<int>(ldc));
}

// Bands start on multiples of 16 rows/columns (the sgemm kernels' tile widths).
constexpr int64_t kAlign = 16;

}  // namespace

void Sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool by_rows = N <= M;  // split the larger dimension: the other operand is packed per band
  const int64_t extent = by_rows ? M : N;
  const int64_t bands = std::min<int64_t>(threads, extent / kAlign);
  if (bands <= 1 || K <= 0) {
    Blas(trans_a, trans_b, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const int64_t step = ((extent + bands - 1) / bands + kAlign - 1) / kAlign * kAlign;
#pragma omp parallel for schedule(static, 1) num_threads(static_cast<int>(bands))
  for (int64_t i = 0; i < bands; ++i) {
    const int64_t lo = std::min(extent, i * step), hi = std::min(extent, lo + step);
    if (lo >= hi) continue;
    if (by_rows) {  // C[lo:hi, :] = op(A)[lo:hi, :] · op(B)
      const float* ai = trans_a ? a + lo : a + lo * lda;
      Blas(trans_a, trans_b, hi - lo, N, K, alpha, ai, lda, b, ldb, beta, c + lo * ldc, ldc);
    } else {  // C[:, lo:hi] = op(A) · op(B)[:, lo:hi]
      const float* bi = trans_b ? b + lo * ldb : b + lo;
      Blas(trans_a, trans_b, M, hi - lo, K, alpha, a, lda, bi, ldb, beta, c + lo, ldc);
    }
  }
}

}  // namespace r1::kernels
