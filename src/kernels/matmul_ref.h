// Scalar reference for matmul.h: out (T, N) = x (T, K) · w (N, K)ᵀ, accumulating in double.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace r1::kernels::ref {

template <typename F>
void MatMul(const F* x, int64_t T, const TensorView& w, F* out, bool accumulate = false) {
  const int64_t N = w.rows(), K = w.cols();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += static_cast<double>(x[t * K + k]) * w.At(n, k);
      out[t * N + n] = static_cast<F>(accumulate ? out[t * N + n] + acc : acc);
    }
}

}  // namespace r1::kernels::ref
