// Matrix products against weights stored [N, K] (out features, in features) as in the
// checkpoints, in f32, bf16 or fp8 e4m3 with 128x128 block scales.
//
//   x: (T, K) f32; w: (N, K) any dtype; out: (T, N) f32;  out = x · wᵀ  (or out += x · wᵀ)
//
// T <= kMaxBatchGemv (decode, batched decode, MoE experts) runs our own GEMV, which reads bf16/fp8
// weights directly (the weight bytes are the whole cost of a decode step) and streams each weight
// row once for all T inputs. Its per-row arithmetic does not depend on T, on the row's position in
// the batch or on the thread count: row t of MatMul(x, T) is bit-identical to MatMul(x + t·K, 1),
// which is what makes a batched decode step equal to decoding each sequence alone. Larger T
// (prefill, training) dequantizes 128-row panels of w to f32 and calls BLAS sgemm on them.
// A view that carries a packed bf16 copy (TensorView::bf16_packed) is multiplied by that copy
// at every T (PackedBf16Product in kernels/gemm.h): bf16 products whose rows likewise do not
// depend on T, the batch or the thread count.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "kernels/gemm.h"

namespace r1::kernels {

// Largest T that takes the GEMV path (measured crossover with sgemm: bench_kernels --matmul-t).
inline constexpr int64_t kMaxBatchGemv = 32;

void MatMul(const float* x, int64_t T, const TensorView& w, float* out, bool accumulate = false);
// The same in a given precision (f32 weights; with kBf16 every T goes to Sgemm).
void MatMul(const float* x, int64_t T, const TensorView& w, float* out, bool accumulate, GemmPrecision precision);

// The GEMV alone: out[n] (=|+=) Σ_k x[k]·w[n,k], n in [0, N). OpenMP over output rows.
void Gemv(const float* x, const TensorView& w, float* out, bool accumulate = false);

// Rows [row_begin, row_end) of the GEMV only, single-threaded; the building block of Gemv and of
// callers that parallelize over several matrices themselves (MoE experts).
void GemvRows(const float* x, const TensorView& w, int64_t row_begin, int64_t row_end, float* out,
              bool accumulate);

// The same for T <= kMaxBatchGemv inputs, input t at x + t·x_stride, streaming the rows once:
//   out[t·ldo + (n − row_begin)] (=|+=) Σ_k x_t[k]·w[n,k],  n in [row_begin, row_end).
// Each result is bit-identical to GemvRows on that input alone. For a view with a packed bf16
// copy, row_begin is a multiple of kPackedBf16Columns (its panels' width).
void GemvRowsBatch(const float* x, int64_t T, int64_t x_stride, const TensorView& w, int64_t row_begin,
                   int64_t row_end, float* out, int64_t ldo, bool accumulate);

// out (T, N) (=|+=) x (T, K) · wᵀ by w's packed bf16 copy (PackBf16Weight or, for a product by
// the matrix itself, PackBf16WeightTransposed), which MatMul and MatMulBackward use for views that
// carry one. OpenMP over row blocks and column chunks outside a parallel region.
void PackedBf16MatMul(const float* x, int64_t T, int64_t K, const uint32_t* packed, int64_t N, float* out,
                      bool accumulate);

// One product of MatMulSharedInput: out (T, w.rows()) (=|+=) x · wᵀ.
struct SharedInputJob {
  const TensorView* w;
  float* out;
  bool accumulate = false;
};
// Products of one input x (T, K) by several matrices of K columns (the MLP's gate and up, MLA's
// query and latent down-projections), each out with exactly MatMul's bits. When every matrix
// carries a packed bf16 copy, x is rounded and packed once for all of them and their column
// chunks share one parallel loop.
void MatMulSharedInput(const float* x, int64_t T, std::span<const SharedInputJob> jobs);
// One product of MatMulMany: out (T, N) (=|+=) x (T, K) · wᵀ.
struct MatMulJob {
  const float* x;
  int64_t T;
  const TensorView* w;
  float* out;
  bool accumulate = false;
};

// Independent products, each with exactly MatMul's result. The small ones (T <= kMaxBatchGemv)
// share one OpenMP region that hands out row chunks of all of them, so the many small products of
// an MoE layer in a decode step cost one fork/join instead of one each; larger ones run one after
// another on sgemm. Consecutive jobs on the same input rows (an expert's gate and up) by packed
// bf16 copies pack those rows once.
void MatMulMany(const std::vector<MatMulJob>& jobs);

// Backward of MatMul for an f32 weight w (N, K): dx (T, K) += dy (T, N)·w (dx = … when
// !accumulate_dx, which spares the caller zeroing a fresh buffer) and dw (N, K) += dyᵀ·x (T, K).
// Either output may be null. A view carrying bf16_packed_t gets dx by that copy (Sgemm's bf16 bits).
void MatMulBackward(const float* x, int64_t T, const TensorView& w, const float* dy, float* dx, float* dw,
                    bool accumulate_dx = true);
void MatMulBackward(const float* x, int64_t T, const TensorView& w, const float* dy, float* dx, float* dw,
                    bool accumulate_dx, GemmPrecision precision);
// The weight gradients of MatMulBackward for matrices that multiplied the same input x (T, K):
// dw (N, K) += dyᵀ (N, T) · x for each job, with its bits. With bf16 products on one thread (the
// lanes of a GRPO update, or one thread in all), x is rounded and packed once for all of them.
struct WeightGradJob {
  const float* dy;  // (T, N)
  int64_t N;
  float* dw;  // (N, K)
};
void WeightGradsSharedInput(const float* x, int64_t T, int64_t K, std::span<const WeightGradJob> jobs);

}  // namespace r1::kernels
