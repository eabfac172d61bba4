// Products by a weight's packed bf16 copy (TensorView::bf16_packed, kernels::PackBf16Weight):
// every entry point that honours the copy — MatMul at any row count, MatMulMany (whose
// consecutive jobs on one input share its packing), MatMulSharedInput, GemvRowsBatch on a row
// range, Gemv — gives exactly the bits of Sgemm's bf16 product of the same operands
// (itself checked against a double reference of the rounded operands in gemm_bf16_test), at 1 or
// 2 threads and inside a parallel region, for shapes with row, column and odd-k tails, several k
// blocks (K > 512) and several row blocks (T > 144); row t of a batch is the bits of that row
// alone; and a view without the copy keeps its f32 product.
#include <gtest/gtest.h>
#include <omp.h>

#include <array>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "test_util.h"

namespace r1::kernels {
namespace {

using testing::RandomVec;

struct PackedWeight {
  int64_t N, K;
  std::vector<float> w;
  std::vector<uint32_t> words;
  PackedWeight(Rng& rng, int64_t n, int64_t k) : N(n), K(k), w(RandomVec(rng, n * k)) {
    words.resize(static_cast<size_t>(PackedBf16WeightWords(N, K)));
    PackBf16Weight(w.data(), N, K, words.data());
  }
  TensorView view(bool packed = true) const {
    TensorView v;
    v.data = w.data();
    v.dtype = DType::kF32;
    v.shape = Shape{N, K};
    v.bf16_packed = packed ? words.data() : nullptr;
    return v;
  }
};

// Sgemm's bf16 product: out (T, N) = x · wᵀ (+ out).
std::vector<float> SgemmBf16(const std::vector<float>& x, int64_t T, const PackedWeight& w, std::vector<float> out,
                             bool accumulate) {
  Sgemm(GemmPrecision::kBf16, false, true, T, w.N, w.K, 1.0f, x.data(), w.K, w.w.data(), w.K,
        accumulate ? 1.0f : 0.0f, out.data(), w.N);
  return out;
}

// Runs fn with `threads` OpenMP threads (1 or 2), or with 0 on thread 1 of a parallel region of two.
void RunAt(int threads, const std::function<void()>& fn) {
  omp_set_num_threads(threads == 0 ? 2 : threads);
  if (threads == 0) {
#pragma omp parallel num_threads(2)
    if (omp_get_thread_num() == 1) fn();
  } else {
    fn();
  }
}

std::string Shape3(int64_t T, int64_t N, int64_t K) {
  return std::to_string(T) + " x " + std::to_string(N) + " x " + std::to_string(K);
}

TEST(PackedBf16, MatMulIsSgemmBf16AtAnyThreadCount) {
  const std::vector<std::array<int64_t, 3>> shapes = {{1, 33, 19},   {7, 64, 256},  {32, 100, 600},
                                                      {13, 1100, 37}, {200, 96, 1025}, {3, 256, 1}};
  const int saved = omp_get_max_threads();
  for (const auto& [T, N, K] : shapes) {
    Rng rng(17 + T * 7 + N * 3 + K);
    const PackedWeight w(rng, N, K);
    const auto x = RandomVec(rng, T * K);
    const auto out0 = RandomVec(rng, T * N);
    for (bool accumulate : {false, true}) {
      const auto want = SgemmBf16(x, T, w, out0, accumulate);
      for (int threads : {1, 2, 0}) {  // 0: by thread 1 of a parallel region of two
        std::vector<float> got = out0;
        RunAt(threads, [&] { MatMul(x.data(), T, w.view(), got.data(), accumulate); });
        EXPECT_EQ(got, want) << Shape3(T, N, K) << " threads " << threads << (accumulate ? " acc" : "");
      }
    }
    omp_set_num_threads(saved);
  }
}

TEST(PackedBf16, BatchRowsAreSingleRows) {
  Rng rng(5);
  const PackedWeight w(rng, 160, 320);
  for (int64_t T : {2, 12, 13, 32, 150}) {
    const auto x = RandomVec(rng, T * w.K);
    std::vector<float> batch(static_cast<size_t>(T * w.N));
    MatMul(x.data(), T, w.view(), batch.data());
    for (int64_t t = 0; t < T; ++t) {
      std::vector<float> single(static_cast<size_t>(w.N));
      MatMul(x.data() + t * w.K, 1, w.view(), single.data());
      ASSERT_EQ(std::memcmp(single.data(), batch.data() + t * w.N, w.N * sizeof(float)), 0)
          << "T=" << T << " row " << t;
    }
    std::vector<float> gemv(static_cast<size_t>(w.N));
    Gemv(x.data(), w.view(), gemv.data());
    EXPECT_EQ(std::memcmp(gemv.data(), batch.data(), w.N * sizeof(float)), 0) << "Gemv against row 0, T=" << T;
  }
}

TEST(PackedBf16, ManyAndRowRangesAreSgemmBf16) {
  Rng rng(11);
  const PackedWeight a(rng, 300, 96), b(rng, 64, 700), c(rng, 40, 33);
  std::vector<MatMulJob> jobs;
  std::vector<std::vector<float>> xs, outs, wants;
  const std::vector<std::pair<const PackedWeight*, int64_t>> specs = {{&a, 5}, {&b, 31}, {&c, 1}, {&a, 60}};
  for (const auto& [w, T] : specs) {
    xs.push_back(RandomVec(rng, T * w->K));
    outs.push_back(RandomVec(rng, T * w->N));
  }
  std::vector<TensorView> views;
  for (const auto& [w, T] : specs) views.push_back(w->view());
  for (size_t i = 0; i < specs.size(); ++i) {
    const bool accumulate = i % 2 == 1;
    wants.push_back(SgemmBf16(xs[i], specs[i].second, *specs[i].first, outs[i], accumulate));
    jobs.push_back({xs[i].data(), specs[i].second, &views[i], outs[i].data(), accumulate});
  }
  MatMulMany(jobs);
  for (size_t i = 0; i < specs.size(); ++i) EXPECT_EQ(outs[i], wants[i]) << "job " << i;

  // GemvRowsBatch: inputs with a stride, rows [64, 300) of a, out with its own leading dimension.
  const int64_t T = 4, stride = a.K + 5, ldo = 250;
  const auto x = RandomVec(rng, T * stride);
  std::vector<float> dense(static_cast<size_t>(T * a.K));
  for (int64_t t = 0; t < T; ++t) std::memcpy(dense.data() + t * a.K, x.data() + t * stride, a.K * sizeof(float));
  const auto want = SgemmBf16(dense, T, a, std::vector<float>(static_cast<size_t>(T * a.N)), false);
  std::vector<float> got(static_cast<size_t>(T * ldo), -1.0f);
  GemvRowsBatch(x.data(), T, stride, a.view(), 64, 300, got.data(), ldo, false);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 64; n < 300; ++n) ASSERT_EQ(got[t * ldo + n - 64], want[t * a.N + n]) << t << ", " << n;
}

// MatMulBackward's dx by the packed copy of wᵀ (PackBf16WeightTransposed): Sgemm's bf16 bits of
// dy · w, with several k blocks (N > 512), column tails and odd N, at 1 and 2 threads and inside a
// parallel region; dw stays Sgemm's.
TEST(PackedBf16, BackwardByTheTransposedCopyIsSgemmBf16) {
  const std::vector<std::array<int64_t, 3>> shapes = {{5, 33, 19}, {40, 256, 256}, {150, 1100, 70}, {3, 7, 1}};
  const int saved = omp_get_max_threads();
  for (const auto& [T, N, K] : shapes) {
    Rng rng(29 + T + N * 5 + K);
    const PackedWeight w(rng, N, K);
    std::vector<uint32_t> words_t(static_cast<size_t>(PackedBf16WeightWords(K, N)));
    PackBf16WeightTransposed(w.w.data(), N, K, words_t.data());
    TensorView v = w.view();
    v.bf16_packed_t = words_t.data();
    const auto x = RandomVec(rng, T * K), dy = RandomVec(rng, T * N), dx0 = RandomVec(rng, T * K);
    for (bool accumulate : {false, true}) {
      std::vector<float> want = dx0, want_dw(static_cast<size_t>(N * K), 0.0f);
      Sgemm(GemmPrecision::kBf16, false, false, T, K, N, 1.0f, dy.data(), N, w.w.data(), K, accumulate ? 1.0f : 0.0f,
            want.data(), K);
      Sgemm(GemmPrecision::kBf16, true, false, N, K, T, 1.0f, dy.data(), N, x.data(), K, 1.0f, want_dw.data(), K);
      for (int threads : {1, 2, 0}) {  // 0: by thread 1 of a parallel region of two
        std::vector<float> got = dx0, got_dw(static_cast<size_t>(N * K), 0.0f);
        auto run = [&] {
          MatMulBackward(x.data(), T, v, dy.data(), got.data(), got_dw.data(), accumulate, GemmPrecision::kBf16);
        };
        RunAt(threads, run);
        EXPECT_EQ(got, want) << Shape3(T, N, K) << " threads " << threads << (accumulate ? " acc" : "");
        EXPECT_EQ(got_dw, want_dw) << Shape3(T, N, K) << " threads " << threads;
      }
    }
    omp_set_num_threads(saved);
  }
}

// Products of one input: MatMulSharedInput packs x once for every matrix, and MatMulMany shares
// the packing between consecutive jobs on the same rows (an expert's gate and up, small and large
// T). Each output is still exactly its own product's bits — one matrix with several k blocks, one
// with a column tail, accumulate and assign — at 1 and 2 threads and inside a parallel region, and
// views without the copy take their own f32 products.
TEST(PackedBf16, ProductsOfOneInputAreEachTheirOwn) {
  const int saved = omp_get_max_threads();
  for (int64_t T : {1, 13, 32, 33, 300}) {
    for (int64_t K : {96, 700}) {
      Rng rng(41 + T * 3 + K);
      const PackedWeight a(rng, 256, K), b(rng, 70, K), c(rng, 33, K);
      const auto x = RandomVec(rng, T * K);
      const std::vector<const PackedWeight*> ws = {&a, &b, &c};
      std::vector<std::vector<float>> out0, want;
      for (size_t i = 0; i < ws.size(); ++i) {
        out0.push_back(RandomVec(rng, T * ws[i]->N));
        want.push_back(SgemmBf16(x, T, *ws[i], out0[i], /*accumulate=*/i == 1));
      }
      std::vector<TensorView> views;
      for (const PackedWeight* w : ws) views.push_back(w->view());
      for (int threads : {1, 2, 0}) {  // 0: by thread 1 of a parallel region of two
        std::vector<std::vector<float>> got = out0, many = out0;
        std::vector<SharedInputJob> jobs;
        std::vector<MatMulJob> mjobs;
        for (size_t i = 0; i < ws.size(); ++i) {
          jobs.push_back({&views[i], got[i].data(), i == 1});
          mjobs.push_back({x.data(), T, &views[i], many[i].data(), i == 1});
        }
        auto run = [&] {
          MatMulSharedInput(x.data(), T, jobs);
          MatMulMany(mjobs);
        };
        RunAt(threads, run);
        for (size_t i = 0; i < ws.size(); ++i) {
          EXPECT_EQ(got[i], want[i]) << "shared input, " << Shape3(T, ws[i]->N, K) << " threads " << threads;
          EXPECT_EQ(many[i], want[i]) << "MatMulMany, " << Shape3(T, ws[i]->N, K) << " threads " << threads;
        }
      }
      omp_set_num_threads(saved);
      // Without the copies: each matrix's own (f32) product.
      std::vector<TensorView> plain;
      for (const PackedWeight* w : ws) plain.push_back(w->view(/*packed=*/false));
      std::vector<std::vector<float>> got = out0, own = out0;
      std::vector<SharedInputJob> jobs;
      for (size_t i = 0; i < ws.size(); ++i) {
        jobs.push_back({&plain[i], got[i].data(), i == 1});
        MatMul(x.data(), T, plain[i], own[i].data(), i == 1);
      }
      MatMulSharedInput(x.data(), T, jobs);
      for (size_t i = 0; i < ws.size(); ++i) EXPECT_EQ(got[i], own[i]) << "f32, " << Shape3(T, ws[i]->N, K);
    }
  }
}

// The weight gradients of matrices that multiplied one input (WeightGradsSharedInput, x packed
// once on one thread): each dw gets exactly MatMulBackward's bits in the same setting — bf16 at 1
// thread and inside a parallel region (the shared packing), at 2 threads (separate products), and
// f32 — and in bf16 Sgemm's at any thread count, with T over one k block (> 512) and odd, and a
// gradient with a column tail.
TEST(PackedBf16, WeightGradientsOfOneInputAreEachTheirOwn) {
  const int saved = omp_get_max_threads();
  for (int64_t T : {1, 37, 601}) {
    const int64_t K = 80;
    Rng rng(53 + T);
    const auto x = RandomVec(rng, T * K);
    const std::vector<int64_t> Ns = {256, 33, 70};
    std::vector<std::vector<float>> dys, dw0;
    for (int64_t N : Ns) {
      dys.push_back(RandomVec(rng, T * N));
      dw0.push_back(RandomVec(rng, N * K));
    }
    for (GemmPrecision precision : {GemmPrecision::kBf16, GemmPrecision::kF32}) {
      std::vector<std::vector<float>> want = dw0;
      for (size_t i = 0; i < Ns.size(); ++i)
        Sgemm(precision, true, false, Ns[i], K, T, 1.0f, dys[i].data(), Ns[i], x.data(), K, 1.0f, want[i].data(), K);
      for (int threads : {1, 2, 0}) {
        // own: MatMulBackward's dw in the same setting (OpenBLAS's f32 sums may depend on its threads).
        std::vector<std::vector<float>> got = dw0, own = dw0;
        std::vector<WeightGradJob> jobs;
        for (size_t i = 0; i < Ns.size(); ++i) jobs.push_back({dys[i].data(), Ns[i], got[i].data()});
        auto run = [&] {
          const ScopedGemmPrecision scope(precision);
          WeightGradsSharedInput(x.data(), T, K, jobs);
          for (size_t i = 0; i < Ns.size(); ++i) {
            TensorView w;
            w.dtype = DType::kF32;
            w.shape = Shape{Ns[i], K};
            MatMulBackward(x.data(), T, w, dys[i].data(), nullptr, own[i].data());
          }
        };
        RunAt(threads, run);
        for (size_t i = 0; i < Ns.size(); ++i) {
          const std::string what = "T " + std::to_string(T) + " N " + std::to_string(Ns[i]) + " threads " +
                                   std::to_string(threads) + (precision == GemmPrecision::kBf16 ? " bf16" : " f32");
          EXPECT_EQ(got[i], own[i]) << what << ": against MatMulBackward";
          if (precision == GemmPrecision::kBf16) {
            EXPECT_EQ(got[i], want[i]) << what << ": against Sgemm";
          }
        }
      }
      omp_set_num_threads(saved);
    }
  }
}

// The copy is what gets multiplied: without it the same view is the f32 product, which keeps
// the 2⁻¹⁰ detail of 1 + 2⁻¹⁰ that bf16 rounds away.
TEST(PackedBf16, OnlyViewsWithTheCopyMultiplyInBf16) {
  Rng rng(3);
  PackedWeight w(rng, 32, 2);
  w.w = {1.0f + 0x1p-10f, 0.0f};
  w.w.resize(static_cast<size_t>(w.N * w.K), 0.0f);
  PackBf16Weight(w.w.data(), w.N, w.K, w.words.data());
  const std::vector<float> x = {1.0f, 0.0f};
  std::vector<float> packed(32), f32(32);
  MatMul(x.data(), 1, w.view(true), packed.data());
  MatMul(x.data(), 1, w.view(false), f32.data());
  EXPECT_EQ(packed[0], 1.0f);
  EXPECT_EQ(f32[0], 1.0f + 0x1p-10f);
}

}  // namespace
}  // namespace r1::kernels
