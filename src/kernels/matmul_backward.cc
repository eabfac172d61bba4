// Backward of MatMul for f32 weights (training keeps f32 master weights).
#include <omp.h>

#include <vector>

#include "kernels/gemm.h"
#include "kernels/matmul.h"

namespace r1::kernels {

void MatMulBackward(const float* x, int64_t T, const TensorView& w, const float* dy, float* dx, float* dw,
                    bool accumulate_dx) {
  MatMulBackward(x, T, w, dy, dx, dw, accumulate_dx, CurrentGemmPrecision());
}

void MatMulBackward(const float* x, int64_t T, const TensorView& w, const float* dy, float* dx, float* dw,
                    bool accumulate_dx, GemmPrecision precision) {
  const int64_t N = w.rows(), K = w.cols();
  if (dx && w.bf16_packed_t)  // the same by the packed copy of w: Sgemm's bf16 bits
    PackedBf16MatMul(dy, T, N, w.bf16_packed_t, K, dx, accumulate_dx);
  else if (dx)  // dx (T, K) (+)= dy (T, N) · w (N, K)
    Sgemm(precision, false, false, T, K, N, 1.0f, dy, N, w.f32(), K, accumulate_dx ? 1.0f : 0.0f, dx, K);
  if (dw)  // dw (N, K) += dy (T, N)ᵀ · x (T, K)
    Sgemm(precision, true, false, N, K, T, 1.0f, dy, N, x, K, 1.0f, dw, K);
}

void WeightGradsSharedInput(const float* x, int64_t T, int64_t K, std::span<const WeightGradJob> jobs) {
  const GemmPrecision precision = CurrentGemmPrecision();
  if (precision == GemmPrecision::kBf16 && (omp_in_parallel() || omp_get_max_threads() == 1)) {
    // Sgemm would run each of these on this thread alone: the same products, x packed once.
    std::vector<Bf16Part> parts;
    for (const WeightGradJob& j : jobs) parts.push_back({j.N, j.dy, j.N, j.dw, K});
    SgemmBf16SerialSharedB(/*trans_a=*/true, /*trans_b=*/false, parts, K, T, 1.0f, x, K, 1.0f);
    return;
  }
  for (const WeightGradJob& j : jobs) Sgemm(precision, true, false, j.N, K, T, 1.0f, j.dy, j.N, x, K, 1.0f, j.dw, K);
}

}  // namespace r1::kernels
