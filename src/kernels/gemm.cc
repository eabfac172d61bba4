#include "kernels/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>

namespace r1::kernels {
namespace {

std::atomic<GemmPrecision> g_precision{GemmPrecision::kF32};

void Blas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
              beta, c, static_cast<int>(ldc));
}

// Bands start on multiples of 16 rows/columns (the sgemm kernels' tile widths).
constexpr int64_t kAlign = 16;

// OpenBLAS (0.3.21, AVX-512 cores) sends products of at most 100³ multiply-adds to its
// small-matrix kernels, whose sums for an element depend on the call's shape (its row and column
// tails): a band of such a product is not the same k-ordered sum as the whole. Only products whose
// every band stays above this size are split; the rest run as one call.
constexpr double kSmallKernelMnk = 1e6;

}  // namespace

GemmPrecision CurrentGemmPrecision() { return g_precision.load(std::memory_order_relaxed); }

ScopedGemmPrecision::ScopedGemmPrecision(GemmPrecision p) : previous_(g_precision.exchange(p)) {}
ScopedGemmPrecision::~ScopedGemmPrecision() { g_precision.store(previous_); }

void Sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  Sgemm(CurrentGemmPrecision(), trans_a, trans_b, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}

void Sgemm(GemmPrecision precision, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  auto serial = precision == GemmPrecision::kBf16 ? &SgemmBf16Serial : &Blas;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool by_rows = N <= M;  // split the larger dimension: the other operand is packed per band
  const int64_t extent = by_rows ? M : N;
  auto step_for = [&](int64_t bands) { return ((extent + bands - 1) / bands + kAlign - 1) / kAlign * kAlign; };
  // The multiply-adds of the smallest band (the last one) when split in `bands`.
  auto smallest = [&](int64_t bands) {
    const int64_t last = std::min(step_for(bands), extent - (bands - 1) * step_for(bands));
    return static_cast<double>(last) * static_cast<double>(by_rows ? N : M) * static_cast<double>(K);
  };
  int64_t bands = std::min<int64_t>(threads, extent / kAlign);
  while (bands > 1 && smallest(bands) <= kSmallKernelMnk) --bands;
  if (bands <= 1 || K <= 0) {
    // One call. OpenBLAS (OpenMP build) would share a product over 2.6e5 multiply-adds between
    // omp_get_max_threads() threads of its own, whose partition changes the sums of its edge tiles
    // (33 x 80 x 601 differed at 1 and 2 threads): it runs on this thread alone, as it does inside
    // a parallel region.
    const int saved = threads > 1 && serial == &Blas ? omp_get_max_threads() : 0;
    if (saved) omp_set_num_threads(1);
    serial(trans_a, trans_b, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
    if (saved) omp_set_num_threads(saved);
    return;
  }
  const int64_t step = step_for(bands);
#pragma omp parallel for schedule(static, 1) num_threads(static_cast<int>(bands))
  for (int64_t i = 0; i < bands; ++i) {
    const int64_t lo = std::min(extent, i * step), hi = std::min(extent, lo + step);
    if (lo >= hi) continue;
    if (by_rows) {  // C[lo:hi, :] = op(A)[lo:hi, :] · op(B)
      const float* ai = trans_a ? a + lo : a + lo * lda;
      serial(trans_a, trans_b, hi - lo, N, K, alpha, ai, lda, b, ldb, beta, c + lo * ldc, ldc);
    } else {  // C[:, lo:hi] = op(A) · op(B)[:, lo:hi]
      const float* bi = trans_b ? b + lo * ldb : b + lo;
      serial(trans_a, trans_b, M, hi - lo, K, alpha, a, lda, bi, ldb, beta, c + lo, ldc);
    }
  }
}

}  // namespace r1::kernels
