// The bf16 product (Sgemm in GemmPrecision::kBf16): against a double reference of the operands
// rounded to bf16 (F32ToBf16, nearest, ties to even), for every transpose combination, beta 0 and
// 1, alpha 0.5 and 1, shapes with row, column and odd-k tails, more than one k block (K > 512) and column block
// (N > 1024), and padded leading dimensions. Tolerance: |got − ref| <= 1e-5·(Σ_k |a·b| + |c0|) —
// f32 accumulation only; operands left unrounded (or truncated) miss it by ~100×. Then: the same
// bits at any thread count, ties to even, NaN, the scope of the precision setting, and the AMX
// engine (both engines where the CPU has it: see AmxEngineMultipliesWhereAvailable).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "core/dtype.h"
#include "gemm_check.h"
#include "kernels/gemm.h"
#include "test_util.h"

namespace r1::kernels {
namespace {

using testing::ExpectClose;
using testing::ExpectMatchesReference;
using testing::GemmReference;
using testing::RandomVec;
using testing::ReferenceGemm;
using testing::SgemmAtThreadCounts;

double Bf(float x) { return static_cast<double>(Bf16ToF32(F32ToBf16(x))); }

class SgemmBf16Test : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(SgemmBf16Test, MatchesRoundedReference) {
  const auto [M, N, K] = GetParam();
  Rng rng(91 + M * 131 + N * 17 + K);
  ScopedGemmPrecision bf16(GemmPrecision::kBf16);
  // alpha 1 with beta 0 or 1 is the AMX engine's other path (its tiles start from C)
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f})
        for (float alpha : {0.5f, 1.0f}) {
          const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 3, ldc = N + 3;
          const auto a = RandomVec(rng, (ta ? K : M) * lda), b = RandomVec(rng, (tb ? N : K) * ldb);
          const auto c0 = RandomVec(rng, M * ldc);
          const GemmReference r = ReferenceGemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c0, ldc, Bf);
          std::vector<float> c = c0;
          Sgemm(ta, tb, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
          ExpectMatchesReference(c, c0, M, N, ldc, r,
                                 "ta " + std::to_string(ta) + " tb " + std::to_string(tb) + " beta " +
                                     std::to_string(beta) + " alpha " + std::to_string(alpha));
        }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SgemmBf16Test,
                         ::testing::Values(std::make_tuple(int64_t{70}, int64_t{33}, int64_t{19}),
                                           std::make_tuple(int64_t{21}, int64_t{90}, int64_t{40}),
                                           std::make_tuple(int64_t{40}, int64_t{40}, int64_t{1}),
                                           std::make_tuple(int64_t{9}, int64_t{7}, int64_t{64}),
                                           std::make_tuple(int64_t{150}, int64_t{64}, int64_t{1101}),
                                           std::make_tuple(int64_t{13}, int64_t{1100}, int64_t{37})));

TEST(SgemmBf16, SameBitsAtAnyThreadCount) {
  ScopedGemmPrecision bf16(GemmPrecision::kBf16);
  const std::vector<std::array<int64_t, 3>> shapes = {{40, 32, 32}, {300, 128, 64}, {70, 512, 600}, {2048, 96, 64}};
  for (const auto& [M, N, K] : shapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        Rng rng(7 + M + N + K);
        const int64_t lda = ta ? M : K, ldb = tb ? K : N;
        const auto a = RandomVec(rng, M * K), b = RandomVec(rng, K * N);
        const auto got = SgemmAtThreadCounts(ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f,
                                             std::vector<float>(static_cast<size_t>(M * N)), N);
        std::vector<float> serial(static_cast<size_t>(M * N));
        SgemmBf16Serial(ta, tb, M, N, K, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, serial.data(), N);
        const std::string what = std::to_string(M) + " x " + std::to_string(N) + " x " + std::to_string(K) + " ta " +
                                 std::to_string(ta) + " tb " + std::to_string(tb);
        EXPECT_EQ(got[0], serial) << what << ": 1 thread against the serial product";
        EXPECT_EQ(got[1], serial) << what << ": 2 threads against the serial product";
        EXPECT_EQ(got[2], serial) << what << ": inside a parallel region against the serial product";
      }
}

// Several products by one op(B), packed once (SgemmBf16SerialSharedB): each part's C is the bits
// of its own call, for both layouts of A and B, several k and column blocks, a part without rows,
// beta 0 and 1, and padded leading dimensions left alone.
TEST(SgemmBf16, PartsSharingBAreEachTheirOwnProduct) {
  const int64_t N = 1100, K = 530;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f}) {
        Rng rng(3 + ta * 2 + tb + static_cast<int>(beta) * 4);
        const int64_t ldb = (tb ? K : N) + 1;
        const auto b = RandomVec(rng, (tb ? N : K) * ldb);
        const std::vector<int64_t> Ms = {150, 0, 13};
        std::vector<std::vector<float>> as, want, got;
        std::vector<Bf16Part> parts;
        for (int64_t M : Ms) {
          const int64_t lda = (ta ? M : K) + 2, ldc = N + 3;
          as.push_back(RandomVec(rng, (ta ? K : M) * lda + 1));
          want.push_back(RandomVec(rng, M * ldc + 1));
          got.push_back(want.back());
          SgemmBf16Serial(ta, tb, M, N, K, 0.5f, as.back().data(), lda, b.data(), ldb, beta, want.back().data(), ldc);
        }
        for (size_t i = 0; i < Ms.size(); ++i)
          parts.push_back({Ms[i], as[i].data(), (ta ? Ms[i] : K) + 2, got[i].data(), N + 3});
        SgemmBf16SerialSharedB(ta, tb, parts, N, K, 0.5f, b.data(), ldb, beta);
        for (size_t i = 0; i < Ms.size(); ++i)
          EXPECT_EQ(got[i], want[i]) << "part " << i << " ta " << ta << " tb " << tb << " beta " << beta;
      }
}

// 1 + 2⁻⁸ lies halfway between the bf16 values 1 and 1 + 2⁻⁷ and rounds to the even one (1);
// 1 + 3·2⁻⁸ rounds up to 1 + 2⁻⁶; a NaN operand makes its row of C NaN.
TEST(SgemmBf16, RoundsTiesToEvenAndKeepsNaN) {
  const float a[4] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, std::numeric_limits<float>::quiet_NaN(), 2.0f};
  const float b[1] = {1.0f};
  float c[4] = {};
  SgemmBf16Serial(false, false, 4, 1, 1, 1.0f, a, 1, b, 1, 0.0f, c, 1);
  EXPECT_EQ(c[0], 1.0f);
  EXPECT_EQ(c[1], 1.0f + 0x1p-6f);
  EXPECT_TRUE(std::isnan(c[2]));
  EXPECT_EQ(c[3], 2.0f);
}

// A subnormal operand counts as zero (vdpbf16ps reads subnormal bf16 as zero and the conversion
// flushes them; the emulation without AVX512_BF16 does the same), on every packing path: op(A) and
// op(B) in both layouts, and a weight packed ahead.
TEST(SgemmBf16, SubnormalOperandsCountAsZero) {
  const float tiny = 0x1p-130f, big = 0x1p100f;  // tiny·big = 2⁻³⁰ were tiny kept
  ASSERT_EQ(std::fpclassify(tiny), FP_SUBNORMAL);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      float c[1] = {};
      SgemmBf16Serial(ta, tb, 1, 1, 1, 1.0f, &tiny, 1, &big, 1, 0.0f, c, 1);
      EXPECT_EQ(c[0], 0.0f) << "A subnormal, ta " << ta << " tb " << tb;
      SgemmBf16Serial(ta, tb, 1, 1, 1, 1.0f, &big, 1, &tiny, 1, 0.0f, c, 1);
      EXPECT_EQ(c[0], 0.0f) << "B subnormal, ta " << ta << " tb " << tb;
    }
  std::vector<uint32_t> wp(static_cast<size_t>(PackedBf16WeightWords(1, 1)));
  std::vector<uint32_t> xp(static_cast<size_t>(PackedBf16RowsWords(1, 1)));
  PackBf16Weight(&tiny, 1, 1, wp.data());
  PackBf16Rows(&big, 1, 1, 1, xp.data());
  float out[1] = {1.0f};
  PackedBf16Product(xp.data(), 1, 1, wp.data(), 1, 0, 1, out, 1, false);
  EXPECT_EQ(out[0], 0.0f);
}

// Where the CPU has AMX, the tiles are what multiplies by default (unless R1_AMX=0) and what a
// scope asks for: the products agree with the vector engine's to f32 rounding but not in every
// last bit (the two round differently), which shows the tiles ran. Every other test in this file
// and in matmul_packed_test.cc runs on the default engine, and CTest runs them again with
// R1_AMX=0 (tests/kernels/CMakeLists.txt): both engines on such a machine.
TEST(SgemmBf16, AmxEngineMultipliesWhereAvailable) {
  if (!AmxAvailable()) GTEST_SKIP() << "no AMX on this machine: the vector engine only";
  const int64_t M = 100, N = 96, K = 700;
  Rng rng(5);
  const auto a = RandomVec(rng, M * K), b = RandomVec(rng, K * N);
  std::vector<float> amx(static_cast<size_t>(M * N)), vec(amx.size());
  {
    ScopedBf16Engine scope(Bf16Engine::kAmx);
    EXPECT_EQ(CurrentBf16Engine(), Bf16Engine::kAmx);
    SgemmBf16Serial(false, true, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, amx.data(), N);
  }
  {
    ScopedBf16Engine scope(Bf16Engine::kVector);
    EXPECT_EQ(CurrentBf16Engine(), Bf16Engine::kVector);
    SgemmBf16Serial(false, true, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, vec.data(), N);
  }
  const GemmReference r =
      ReferenceGemm(false, true, M, N, K, 1.0, a, K, b, K, 0.0f, std::vector<float>(amx.size()), N, Bf);
  const std::vector<double> vec_d(vec.begin(), vec.end());
  ExpectClose(amx.data(), vec_d.data(), r.mag.data(), M * N, 1e-5, 0.0, "AMX against the vector engine");
  EXPECT_NE(amx, vec) << "every bit equal: the AMX scope did not reach the kernel";
}

TEST(SgemmBf16, PrecisionHoldsForItsScope) {
  EXPECT_EQ(CurrentGemmPrecision(), GemmPrecision::kF32);
  {
    ScopedGemmPrecision bf16(GemmPrecision::kBf16);
    EXPECT_EQ(CurrentGemmPrecision(), GemmPrecision::kBf16);
    {
      ScopedGemmPrecision f32(GemmPrecision::kF32);
      EXPECT_EQ(CurrentGemmPrecision(), GemmPrecision::kF32);
    }
    EXPECT_EQ(CurrentGemmPrecision(), GemmPrecision::kBf16);
  }
  EXPECT_EQ(CurrentGemmPrecision(), GemmPrecision::kF32);
  // f32 precision keeps Sgemm's f32 product: a 2⁻¹⁰ detail survives, which bf16 would round away.
  const float a[1] = {1.0f + 0x1p-10f}, b[1] = {1.0f};
  float c[1] = {};
  Sgemm(false, false, 1, 1, 1, 1.0f, a, 1, b, 1, 0.0f, c, 1);
  EXPECT_EQ(c[0], 1.0f + 0x1p-10f);
}

}  // namespace
}  // namespace r1::kernels
