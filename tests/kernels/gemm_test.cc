// Sgemm (bands of C split across threads, each a single-threaded sgemm) against a double
// reference, for every transpose combination, beta 0 and 1, row and column splits, shapes that do
// not divide into the 16-wide bands, padded leading dimensions, 1 and 2 threads and a call from
// inside a parallel region. Tolerance as in matmul_test: |got − ref| <= 1e-5·(Σ_k |a·b| + |c0|).
#include "kernels/gemm.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <tuple>
#include <vector>

#include "gemm_check.h"
#include "test_util.h"

namespace r1::kernels {
namespace {

using testing::ExpectMatchesReference;
using testing::GemmReference;
using testing::RandomVec;
using testing::ReferenceGemm;
using testing::SgemmAtThreadCounts;

class SgemmTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(SgemmTest, MatchesReference) {
  const auto [M, N, K] = GetParam();
  Rng rng(77 + M * 131 + N * 17 + K);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f}) {
        // op(A) (M, K), op(B) (K, N), C (M, N); leading dimensions padded by 3.
        const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 3, ldc = N + 3;
        const auto a = RandomVec(rng, (ta ? K : M) * lda), b = RandomVec(rng, (tb ? N : K) * ldb);
        const auto c0 = RandomVec(rng, M * ldc);
        const GemmReference r = ReferenceGemm(ta, tb, M, N, K, 0.5, a, lda, b, ldb, beta, c0, ldc,
                                              [](float x) { return static_cast<double>(x); });
        const auto runs = SgemmAtThreadCounts(ta, tb, M, N, K, 0.5f, a, lda, b, ldb, beta, c0, ldc);
        for (int run = 0; run < 3; ++run) {  // 1 thread, 2 threads, inside a parallel region of two
          ExpectMatchesReference(runs[static_cast<size_t>(run)], c0, M, N, ldc, r,
                                 "ta " + std::to_string(ta) + " tb " + std::to_string(tb) + " beta " +
                                     std::to_string(beta) + " run " + std::to_string(run));
        }
      }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SgemmTest,
                         ::testing::Values(std::make_tuple(int64_t{70}, int64_t{33}, int64_t{19}),   // rows split
                                           std::make_tuple(int64_t{21}, int64_t{90}, int64_t{40}),   // columns split
                                           std::make_tuple(int64_t{40}, int64_t{40}, int64_t{1}),    // K = 1
                                           std::make_tuple(int64_t{9}, int64_t{7}, int64_t{64}),     // no split
                                           std::make_tuple(int64_t{130}, int64_t{64}, int64_t{200})));

// Every element is the same sum whatever the thread count or the banding: 1 and 2 threads and a
// call from inside a parallel region give the same bits (a batched prefill or a per-thread rollout
// then equals its sequences run alone). Shapes: small products that OpenBLAS sends to its
// small-matrix kernels, whose sums depend on the call's row and column tails (rows 33..80 against
// 16-row bands), products just over that size, ones large enough to split, and one that is not
// split but is large enough for OpenBLAS to share between threads of its own (33 x 80 x 601).
TEST(Sgemm, SameBitsAtAnyThreadCount) {
  const std::vector<std::array<int64_t, 3>> shapes = {
      {40, 32, 32},   {40, 48, 64},   {33, 128, 128}, {64, 24, 32},   {80, 32, 64},   {100, 24, 128}, {48, 128, 64},
      {200, 64, 128}, {300, 128, 64}, {70, 512, 64},  {512, 512, 64}, {2048, 96, 64}, {33, 80, 601}};
  for (const auto& [M, N, K] : shapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        Rng rng(5 + M + N + K);
        const int64_t lda = ta ? M : K, ldb = tb ? K : N;
        const auto a = RandomVec(rng, M * K), b = RandomVec(rng, K * N);
        const auto got = SgemmAtThreadCounts(ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f,
                                             std::vector<float>(static_cast<size_t>(M * N)), N);
        const std::string what = std::to_string(M) + " x " + std::to_string(N) + " x " + std::to_string(K) + " ta " +
                                 std::to_string(ta) + " tb " + std::to_string(tb);
        EXPECT_EQ(got[1], got[0]) << what << ": 2 threads against 1";
        EXPECT_EQ(got[2], got[0]) << what << ": inside a parallel region against 1 thread";
      }
}

}  // namespace
}  // namespace r1::kernels
