// MatMul / Gemv / GemvRows against the double-accumulating scalar reference (matmul_ref.h), for
// f32, bf16 and fp8 weights, T = 1 (our GEMV) and T > 1 (BLAS on dequantized panels).
//
// Tolerance: f32 accumulation over K terms against a double reference; the error is bounded by a
// small multiple of eps·Σ|x·w|, so we require |got − ref| <= 1e-5·(Σ_k |x_k·w_nk| + |out0|).
#include <gtest/gtest.h>

#include <omp.h>

#include <tuple>

#include "kernels/matmul.h"
#include "kernels/matmul_ref.h"
#include "test_util.h"

namespace r1::kernels {
namespace {

using testing::ExpectClose;
using testing::RandomVec;
using testing::RandomWeight;

constexpr double kRtol = 1e-5;

const char* Name(DType d) { return DTypeName(d); }

// Reference out (T, N) in double, plus the magnitude Σ|x·w| (+ |out0| when accumulating).
void Reference(const std::vector<float>& x, int64_t T, const TensorView& w,
               const std::vector<float>& out0, bool accumulate, std::vector<double>* ref,
               std::vector<double>* mag) {
  const int64_t N = w.rows(), K = w.cols();
  std::vector<double> xd = testing::ToDouble(x);
  ref->assign(static_cast<size_t>(T * N), 0.0);
  if (accumulate) ref->assign(out0.begin(), out0.end());
  ref::MatMul<double>(xd.data(), T, w, ref->data(), accumulate);
  mag->assign(static_cast<size_t>(T * N), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) {
      double m = accumulate ? std::fabs(out0[t * N + n]) : 0.0;
      for (int64_t k = 0; k < K; ++k) m += std::fabs(x[t * K + k] * static_cast<double>(w.At(n, k)));
      (*mag)[t * N + n] = m;
    }
}

class MatMulTest : public ::testing::TestWithParam<std::tuple<DType, int64_t, int64_t>> {};

TEST_P(MatMulTest, MatchesReference) {
  const auto [dtype, N, K] = GetParam();
  Rng rng(1000 + N * 7 + K);
  RandomWeight w(rng, dtype, N, K);
  for (int64_t T : {1, 2, 5, 64}) {
    if (T == 64 && N * K > 100000) continue;  // keep the reference under a second
    for (bool accumulate : {false, true}) {
      const auto x = RandomVec(rng, T * K);
      const auto out0 = RandomVec(rng, T * N);
      std::vector<double> ref, mag;
      Reference(x, T, w.view(), out0, accumulate, &ref, &mag);
      std::vector<float> out = out0;
      MatMul(x.data(), T, w.view(), out.data(), accumulate);
      ExpectClose(out.data(), ref.data(), mag.data(), T * N, kRtol, 0.0,
                  std::string("MatMul ") + Name(dtype) + " T=" + std::to_string(T) +
                      (accumulate ? " acc" : ""));
    }
  }
}

// Shapes: tiny, odd K (SIMD tails), partial 128-blocks in both dims (fp8: 200x300 has a 72-row
// and a 44-column edge block), more rows than one 16-row OpenMP chunk, K just past a block.
INSTANTIATE_TEST_SUITE_P(
    Shapes, MatMulTest,
    ::testing::Combine(::testing::Values(DType::kF32, DType::kBF16, DType::kF8E4M3),
                       ::testing::Values(1, 3, 37, 200),
                       ::testing::Values(1, 7, 33, 129, 300)),
    [](const auto& info) {
      return std::string(Name(std::get<0>(info.param))) + "_N" +
             std::to_string(std::get<1>(info.param)) + "_K" + std::to_string(std::get<2>(info.param));
    });

// Larger-than-threshold GEMVs run the OpenMP path; compare it and single-thread GemvRows.
TEST(Gemv, ParallelAndRowRanges) {
  Rng rng(7);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF8E4M3}) {
    const int64_t N = 300, K = 517;
    RandomWeight w(rng, dtype, N, K);
    const auto x = RandomVec(rng, K);
    std::vector<double> ref, mag;
    Reference(x, 1, w.view(), {}, false, &ref, &mag);
    std::vector<float> out(N);
    Gemv(x.data(), w.view(), out.data());
    ExpectClose(out.data(), ref.data(), mag.data(), N, kRtol, 0.0, std::string("Gemv ") + Name(dtype));
    // Ranges that start and end off any 4/16-row grouping and straddle the 128-row scale blocks;
    // rows outside the range must stay untouched.
    for (auto [b, e] : {std::pair<int64_t, int64_t>{0, 0}, {0, 1}, {125, 259}, {127, 129},
                        {3, 300}, {297, 300}}) {
      std::vector<float> o(N, 42.0f);
      GemvRows(x.data(), w.view(), b, e, o.data(), false);
      for (int64_t n = 0; n < N; ++n) {
        if (n < b || n >= e) {
          ASSERT_EQ(o[n], 42.0f) << Name(dtype) << " row " << n << " outside [" << b << "," << e << ")";
        }
      }
      if (e > b)
        ExpectClose(o.data() + b, ref.data() + b, mag.data() + b, e - b, kRtol, 0.0,
                    std::string("GemvRows ") + Name(dtype));
    }
  }
}

// Strided batches of inputs over a row band: each result bit-identical to GemvRows on that input
// alone, written at out[t·ldo + (n − row_begin)] and nowhere else.
TEST(Gemv, RowsBatchEqualsOneInputAtATime) {
  Rng rng(12);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF8E4M3}) {
    const int64_t N = 200, K = 131, T = 7, stride = K + 9, b = 61, e = 190, ldo = (e - b) + 3;
    RandomWeight w(rng, dtype, N, K);
    const auto x = RandomVec(rng, T * stride);
    std::vector<float> out(T * ldo, 42.0f);
    GemvRowsBatch(x.data(), T, stride, w.view(), b, e, out.data(), ldo, false);
    for (int64_t t = 0; t < T; ++t) {
      std::vector<float> one(N, 0.0f);
      GemvRows(x.data() + t * stride, w.view(), b, e, one.data(), false);
      for (int64_t n = b; n < e; ++n) ASSERT_EQ(out[t * ldo + (n - b)], one[n]) << Name(dtype) << " t " << t << " n " << n;
      for (int64_t i = e - b; i < ldo; ++i) ASSERT_EQ(out[t * ldo + i], 42.0f) << Name(dtype) << " padding";
    }
  }
}

// A mixed batch of products (small and sgemm-sized T, assigned and accumulated, every dtype):
// each result exactly MatMul's.
TEST(MatMul, ManyEqualsOneByOne) {
  Rng rng(13);
  const std::vector<int64_t> Ts = {1, 3, 16, kMaxBatchGemv, 40, 0};
  std::vector<RandomWeight> ws;
  for (size_t i = 0; i < Ts.size(); ++i) {
    const DType d = i % 3 == 0 ? DType::kBF16 : i % 3 == 1 ? DType::kF8E4M3 : DType::kF32;
    ws.emplace_back(rng, d, 70 + 31 * static_cast<int64_t>(i), 96 + 17 * static_cast<int64_t>(i));
  }
  std::vector<TensorView> views;
  std::vector<std::vector<float>> xs, outs, want;
  for (size_t i = 0; i < Ts.size(); ++i) {
    views.push_back(ws[i].view());
    xs.push_back(RandomVec(rng, Ts[i] * views[i].cols()));
    outs.push_back(RandomVec(rng, Ts[i] * views[i].rows()));
    want.push_back(outs[i]);
    MatMul(xs[i].data(), Ts[i], views[i], want[i].data(), /*accumulate=*/i % 2 == 1);
  }
  std::vector<MatMulJob> jobs;
  for (size_t i = 0; i < Ts.size(); ++i) jobs.push_back({xs[i].data(), Ts[i], &views[i], outs[i].data(), i % 2 == 1});
  MatMulMany(jobs);
  for (size_t i = 0; i < Ts.size(); ++i) EXPECT_EQ(outs[i], want[i]) << "job " << i << " T " << Ts[i];
}

// Every fp8 code in every SIMD lane position decodes exactly: with a one-hot x the GEMV returns
// decode(w[n, j]) · scale exactly (one non-zero product, all others exact zeros).
TEST(Gemv, Fp8EveryCodeExact) {
  const int64_t N = 256, K = 160;
  std::vector<uint8_t> codes(N * K);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      uint8_t c = static_cast<uint8_t>((n + 37 * k) & 0xff);
      codes[n * K + k] = (c & 0x7f) == 0x7f ? 0 : c;
    }
  std::vector<float> scale = {0.5f, 2.0f, 0.25f, 4.0f};  // [2, 2]
  TensorView w{codes.data(), DType::kF8E4M3, Shape{N, K}, scale.data()};
  std::vector<float> x(K, 0.0f), out(N);
  for (int64_t j : {0, 1, 15, 16, 63, 64, 127, 128, 129, 159}) {
    std::fill(x.begin(), x.end(), 0.0f);
    x[j] = 1.0f;
    Gemv(x.data(), w, out.data());
    for (int64_t n = 0; n < N; ++n)
      ASSERT_EQ(out[n], Fp8E4M3ToF32(codes[n * K + j]) * scale[(n / 128) * 2 + j / 128])
          << "row " << n << " col " << j << " code " << int(codes[n * K + j]);
  }
  // NaN codes propagate (e4m3fn has no infinities; S.1111.111 is NaN).
  codes[5 * K + 3] = 0x7f;
  std::fill(x.begin(), x.end(), 1.0f);
  Gemv(x.data(), w, out.data());
  EXPECT_TRUE(std::isnan(out[5]));
  EXPECT_FALSE(std::isnan(out[4]));
}

// A missing scale tensor means multipliers of 1.
TEST(Gemv, Fp8WithoutScales) {
  Rng rng(11);
  RandomWeight w(rng, DType::kF8E4M3, 40, 300);
  TensorView v = w.view();
  v.scale_inv = nullptr;
  const auto x = RandomVec(rng, 300);
  std::vector<double> ref, mag;
  Reference(x, 1, v, {}, false, &ref, &mag);
  std::vector<float> out(40);
  Gemv(x.data(), v, out.data());
  ExpectClose(out.data(), ref.data(), mag.data(), 40, kRtol, 0.0, "Gemv fp8 unscaled");
}

// Results do not depend on the thread count.
TEST(Gemv, ThreadCountInvariant) {
  Rng rng(3);
  RandomWeight w(rng, DType::kBF16, 512, 256);
  const auto x = RandomVec(rng, 256);
  std::vector<float> a(512), b(512);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  Gemv(x.data(), w.view(), a.data());
  omp_set_num_threads(2);
  Gemv(x.data(), w.view(), b.data());
  omp_set_num_threads(saved);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace r1::kernels
