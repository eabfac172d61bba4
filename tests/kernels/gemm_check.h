// What the Sgemm tests share: the double reference of a product and the product computed at the
// thread configurations Sgemm must agree across.
#pragma once

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "test_util.h"

namespace r1::kernels::testing {

// ref = alpha·op(A)·op(B) + beta·C0 (M × N, dense) in double, each operand element first passed
// through `operand` (the identity, or rounding to bf16), and mag = the sum of the |terms|.
struct GemmReference {
  std::vector<double> ref, mag;
};
inline GemmReference ReferenceGemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                                   const std::vector<float>& a, int64_t lda, const std::vector<float>& b, int64_t ldb,
                                   double beta, const std::vector<float>& c0, int64_t ldc,
                                   const std::function<double(float)>& operand) {
  GemmReference r{std::vector<double>(static_cast<size_t>(M * N)), std::vector<double>(static_cast<size_t>(M * N))};
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = beta * static_cast<double>(c0[i * ldc + j]), m = std::fabs(s);
      for (int64_t k = 0; k < K; ++k) {
        const double t =
            alpha * operand(ta ? a[k * lda + i] : a[i * lda + k]) * operand(tb ? b[j * ldb + k] : b[k * ldb + j]);
        s += t;
        m += std::fabs(t);
      }
      r.ref[i * N + j] = s;
      r.mag[i * N + j] = m;
    }
  return r;
}

// C (M rows of ldc, started from c0) against the reference: |got − ref| <= 1e-5·mag element by
// element, and the padding between rows (columns N..ldc) left as c0 had it.
inline void ExpectMatchesReference(const std::vector<float>& c, const std::vector<float>& c0, int64_t M, int64_t N,
                                   int64_t ldc, const GemmReference& r, const std::string& what) {
  std::vector<float> got(static_cast<size_t>(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) got[i * N + j] = c[i * ldc + j];
  ExpectClose(got.data(), r.ref.data(), r.mag.data(), M * N, 1e-5, 0.0, what);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = N; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], c0[i * ldc + j]) << what << ": padding overwritten";
}

// C (started from c0) after Sgemm in the current precision on 1 thread, on 2 threads, and called
// by thread 1 of a parallel region of two, in that order.
inline std::vector<std::vector<float>> SgemmAtThreadCounts(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                                           float alpha, const std::vector<float>& a, int64_t lda,
                                                           const std::vector<float>& b, int64_t ldb, float beta,
                                                           const std::vector<float>& c0, int64_t ldc) {
  std::vector<std::vector<float>> out;
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 0}) {  // 0: inside a parallel region of two
    std::vector<float> c = c0;
    omp_set_num_threads(threads == 0 ? 2 : threads);
    if (threads == 0) {
#pragma omp parallel num_threads(2)
      if (omp_get_thread_num() == 1) Sgemm(ta, tb, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
    } else {
      Sgemm(ta, tb, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
    }
    out.push_back(std::move(c));
  }
  omp_set_num_threads(saved);
  return out;
}

}  // namespace r1::kernels::testing
