// MatMul's batched GEMV (1 < T <= kMaxBatchGemv) is bit-identical, row by row, to the T == 1 GEMV:
// the property that makes a continuous-batching decode step equal to decoding each sequence
// alone. Checked for every dtype, every T up to the limit, shapes with SIMD and 128-block tails,
// both accumulate modes and 1 or 2 threads; the scalar-reference accuracy of the batched path is
// covered by matmul_test (T = 2, 5).
#include <gtest/gtest.h>

#include <omp.h>

#include <cstring>

#include "kernels/matmul.h"
#include "test_util.h"

namespace r1::kernels {
namespace {

using testing::RandomVec;
using testing::RandomWeight;

// Row t of MatMul(x, T) against MatMul(x_t, 1), compared as bits.
void ExpectRowsIdentical(const RandomWeight& w, int64_t T, bool accumulate, Rng& rng) {
  const int64_t N = w.N, K = w.K;
  const auto x = RandomVec(rng, T * K);
  const auto out0 = RandomVec(rng, T * N);
  std::vector<float> batch = out0;
  MatMul(x.data(), T, w.view(), batch.data(), accumulate);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<float> single(out0.begin() + t * N, out0.begin() + (t + 1) * N);
    MatMul(x.data() + t * K, 1, w.view(), single.data(), accumulate);
    ASSERT_EQ(std::memcmp(single.data(), batch.data() + t * N, N * sizeof(float)), 0)
        << DTypeName(w.dtype) << " N=" << N << " K=" << K << " T=" << T << " row " << t
        << (accumulate ? " acc" : "");
  }
}

class MatMulBatchTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatMulBatchTest, RowsBitIdenticalToSingle) {
  const DType dtype = GetParam();
  Rng rng(77);
  // K: under one SIMD chunk, odd, a 128-block plus a tail; N: odd counts around the 2/4/16-row
  // groupings and a 128-row scale-block edge.
  for (auto [N, K] : {std::pair<int64_t, int64_t>{5, 7}, {37, 300}, {131, 129}, {64, 512}}) {
    RandomWeight w(rng, dtype, N, K);
    for (int64_t T = 1; T <= kMaxBatchGemv; ++T)
      for (bool accumulate : {false, true}) ExpectRowsIdentical(w, T, accumulate, rng);
  }
}

// Large enough for the OpenMP path; 1 and 2 threads give the same bits.
TEST_P(MatMulBatchTest, ThreadCountInvariant) {
  const DType dtype = GetParam();
  Rng rng(78);
  RandomWeight w(rng, dtype, 300, 640);
  const int saved = omp_get_max_threads();
  for (int64_t T : {int64_t{3}, int64_t{16}, kMaxBatchGemv}) {
    const auto x = RandomVec(rng, T * 640);
    std::vector<float> a(T * 300), b(T * 300);
    omp_set_num_threads(1);
    MatMul(x.data(), T, w.view(), a.data());
    omp_set_num_threads(2);
    MatMul(x.data(), T, w.view(), b.data());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "T=" << T;
    omp_set_num_threads(saved);
    ExpectRowsIdentical(w, T, false, rng);
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, MatMulBatchTest,
                         ::testing::Values(DType::kF32, DType::kBF16, DType::kF8E4M3),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

}  // namespace
}  // namespace r1::kernels
