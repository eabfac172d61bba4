// Row-major f32 GEMM for the training products and the prefill: C (M, N) = alpha · op(A) · op(B)
// + beta · C, as cblas_sgemm, with the threads split here rather than inside OpenBLAS.
//
// OpenBLAS's own threading shares packed panels between its threads and synchronizes on them in
// every call; for the small and mid-sized products of the models trained here two independent
// halves, each a single-threaded sgemm, are faster (2 threads: 2048 × 128 × 128 190 → 261 GF/s,
// 2048 × 384 × 128 212–260 → 276–287, 2048 × 512 × 512 +3 %). Outside a parallel region each
// thread takes a band of C — rows when op(B) is the smaller operand (each band packs all of it),
// columns otherwise — and calls sgemm on it; inside one (the MoE experts, attention heads) OpenBLAS
// runs single-threaded already and the call goes straight through. Every element of C is the
// same k-ordered sum whichever band computes it, at any thread count: products small enough for
// OpenBLAS's small-matrix kernels (whose sums depend on the call's shape) are never split, and a
// product left whole runs single-threaded (OpenBLAS's own split would change its edge tiles' sums).
#pragma once

#include <cstdint>
#include <span>

namespace r1::kernels {

// The precision of Sgemm's products in this process: f32, or bf16 — each operand rounded to bf16
// (nearest, ties to even; subnormals flushed to zero, as AVX512_BF16's conversion does) and the
// products summed in f32, the mixed precision of training with
// `--precision bf16` (AVX512_BF16's vdpbf16ps where the CPU has it: twice the f32 FMA rate on
// Zen 4). Set for a scope with ScopedGemmPrecision (training sets it around its steps, GRPO
// around its update). Under bf16, MatMul sends products of any row count to Sgemm rather than to
// the f32 GEMV; attention's own products (straight BLAS calls) stay f32.
enum class GemmPrecision { kF32, kBf16 };
GemmPrecision CurrentGemmPrecision();
class ScopedGemmPrecision {
 public:
  explicit ScopedGemmPrecision(GemmPrecision p);
  ~ScopedGemmPrecision();
  ScopedGemmPrecision(const ScopedGemmPrecision&) = delete;
  ScopedGemmPrecision& operator=(const ScopedGemmPrecision&) = delete;

 private:
  GemmPrecision previous_;
};

void Sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// The same in a given precision rather than the current one.
void Sgemm(GemmPrecision precision, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Sgemm's bf16 product on the calling thread alone (Sgemm in bf16 precision splits C into bands
// of these). Every element is the same k-ordered sum whatever the shape of the call around it.
void SgemmBf16Serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a,
                     int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// One product of SgemmBf16SerialSharedB: C (M, N) = alpha · op(A) · op(B) + beta · C, op(A) of M
// rows (trans_a: a is K × M).
struct Bf16Part {
  int64_t M;
  const float* a;
  int64_t lda;
  float* c;
  int64_t ldc;
};
// SgemmBf16Serial for several products by the same op(B) (K × N), each block of which is rounded
// and packed once for all of them: the weight gradients of matrices that multiply the same input
// (dw = dyᵀ · x for the MLP's gate and up). Every part's C gets the bits of its own call.
void SgemmBf16SerialSharedB(bool trans_a, bool trans_b, std::span<const Bf16Part> parts, int64_t N, int64_t K,
                            float alpha, const float* b, int64_t ldb, float beta);
// Weights packed once for many bf16 products out = x · wᵀ (w: N × K f32, row-major as stored):
// the operand Sgemm's bf16 product rounds and packs on every call, prepared ahead. A decode step
// multiplies every matrix by a few rows, where packing per call would cost as much as the
// product; `r1 grpo --precision bf16` samples its rollouts from such a copy, and its update's
// forward multiplies by it, repacked after each optimizer step. Results are bit-identical to
// Sgemm(kBf16, false, true, T, N, K, 1, x, K, w, K, accumulate ? 1 : 0, out, N) for the same rows
// and columns, whatever the row count and range.
//
// Words of w's packed copy, and the packing (k blocks of 512 of 32-column panels of pair words).
int64_t PackedBf16WeightWords(int64_t N, int64_t K);
void PackBf16Weight(const float* w, int64_t N, int64_t K, uint32_t* out);
// The same for wᵀ (K, N) from w (N, K), PackedBf16WeightWords(K, N) words: the copy a backward
// pass multiplies by, dx (T, K) = dy (T, N) · w, with the bits of Sgemm(kBf16, false, false, T, K,
// N, 1, dy, N, w, K, beta, dx, K).
void PackBf16WeightTransposed(const float* w, int64_t N, int64_t K, uint32_t* out);
// Words of T packed input rows of length K, and the packing (row t at x + t·ldx).
int64_t PackedBf16RowsWords(int64_t T, int64_t K);
void PackBf16Rows(const float* x, int64_t T, int64_t ldx, int64_t K, uint32_t* out);
// out[t·ldo + (n − n_begin)] (=|+=) Σ_k x_t[k]·w[n, k] for t < T and n in [n_begin, n_end), on
// the calling thread; n_begin a multiple of 32.
void PackedBf16Product(const uint32_t* x_packed, int64_t T, int64_t K, const uint32_t* w_packed, int64_t N,
                       int64_t n_begin, int64_t n_end, float* out, int64_t ldo, bool accumulate);
// Column alignment of PackedBf16Product's n_begin.
inline constexpr int64_t kPackedBf16Columns = 32;

// Whether this build multiplies bf16 pairs with vdpbf16ps (otherwise with two f32 FMAs, slower).
bool Bf16DotInHardware();

// The unit that multiplies the bf16 products above: AVX-512 vectors (vdpbf16ps, or its emulation)
// or, where the CPU has them, AMX tiles (tdpbf16ps: 16 × 16 × 32 products per instruction; on a
// Xeon with AMX, one core multiplied 16–256 rows by 256 × 256 packed weights 3.8–9.7× faster than
// with vdpbf16ps: `bench_kernels --only bf16`).
// The packed layouts are the same for both. Each keeps every property stated above (the same bits
// whatever the blocking, thread count or row range; packed products equal to Sgemm's), but the
// two round differently — a tile adds its 32 products with its own internal rounding — so results
// differ in the last bits between engines. Process-wide, like the precision: AMX wherever
// AmxAvailable() unless the environment sets R1_AMX=0; ScopedBf16Engine switches it for a scope
// (tests run both engines; asking for AMX where it is not available fails a check).
enum class Bf16Engine { kVector, kAmx };
// The CPU has AMX-BF16 and the OS lets this process use tile data.
bool AmxAvailable();
Bf16Engine CurrentBf16Engine();
// "AMX", "AVX512_BF16", or a note that the build emulates it.
const char* Bf16EngineName(Bf16Engine e);
class ScopedBf16Engine {
 public:
  explicit ScopedBf16Engine(Bf16Engine e);
  ~ScopedBf16Engine();
  ScopedBf16Engine(const ScopedBf16Engine&) = delete;
  ScopedBf16Engine& operator=(const ScopedBf16Engine&) = delete;

 private:
  Bf16Engine previous_ = Bf16Engine::kVector;
};

}  // namespace r1::kernels
