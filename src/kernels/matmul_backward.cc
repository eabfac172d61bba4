// Backward of MatMul for f32 weights (training keeps f32 master weights).
#include <cblas.h>

#include "kernels/matmul.h"

namespace r1::kernels {

void MatMulBackward(const float* x, int64_t T, const TensorView& w, const float* dy, float* dx, float* dw,
                    bool accumulate_dx) {
  const int iT = static_cast<int>(T), N = static_cast<int>(w.rows()), K = static_cast<int>(w.cols());
  if (dx)  // dx (T, K) (+)= dy (T, N) · w (N, K)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, iT, K, N, 1.0f, dy, N, w.f32(), K,
                accumulate_dx ? 1.0f : 0.0f, dx, K);
  if (dw)  // dw (N, K) += dy (T, N)ᵀ · x (T, K)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, iT, 1.0f, dy, N, x, K, 1.0f, dw, K);
}

}  // namespace r1::kernels
