#include "kernels/matmul.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "core/memory.h"
#include "core/threads.h"
#include "kernels/gemm.h"
#include "kernels/simd.h"

namespace r1::kernels {
namespace {

// ---------------------------------------------------------------------------------------------
// GEMV: out[n] = Σ_k x[k]·w[n,k]. Decode is memory-bound, so the aim is to turn every weight byte
// into an FMA operand with as few shuffle-port uops as possible:
//   * x is reordered once per call (and zero-padded to whole chunks) so that the weights can be
//     widened in place without cross-lane shuffles; tails are masked loads, no scalar loops.
//   * kRows rows are processed per pass, sharing each x vector load; with T > 1 inputs, R rows x
//     J inputs per pass share each widened weight vector (see RowsF32 below).
//   * bf16: a 64-byte load holds 32 weights; `<< 16` gives the even ones as f32 and
//     `& 0xffff0000` the odd ones, against x reordered as [x0 x2 … x30 | x1 x3 … x31].
//   * fp8 e4m3: every magnitude (7 bits, NaN included) is exactly a bf16. Two vpermi2b lookups
//     into 128-entry tables give the bf16's high and low bytes for 64 weights at once, the sign
//     bit is or-ed in, and the bytes are interleaved into words and widened as for bf16. Block
//     scales are applied once per 128-column block per row.
// Each row's operation sequence does not depend on how rows are grouped, so results do not
// depend on the row range or the thread count.
// ---------------------------------------------------------------------------------------------

constexpr int64_t kRows = 4;
constexpr int64_t kMaxBatch = kMaxBatchGemv;

int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VBMI__)
#define R1_GEMV_AVX512 1

// The row kernels keep R x J accumulators in registers, indexed by loops over R and J. GCC
// unrolls those loops too late to scalarize the arrays unless told to, and then stores every
// accumulator to the stack on every iteration (24 stores per step of RowsBf16<2, 6>: the store
// port, not the FMAs, was the limit). Every such loop carries this.
#define R1_UNROLL _Pragma("GCC unroll 16")

// A loaded input vector that feeds R FMAs: left to itself GCC folds the load into each of them,
// loading it R times, and with R = 2 the batched f32 kernel is then bound by the load ports
// (K = 256, 12 inputs: 5.2 -> 4.7 ns per row and input when the vector is held in a register).
inline __m512 InRegister(__m512 v) {
  __asm__("" : "+v"(v));
  return v;
}

// out[i] = the sum of v[i]'s 16 lanes, i < N <= 16, each as the same tree (lanes l + 8, then
// + 4, + 2, + 1): the same order for every (row, input) pair, so T == 1 and batched rows agree
// bit for bit. The N trees run as one transposing reduction — each shuffle + add step serves two
// vectors — so the epilogue of a 2 x 6 pass is 36 vector operations instead of ~100, which
// matters when K is small (8 steps of 32 at K = 256). Vector 4p + q's sum lands in lane 4q + p.
template <int N>
inline void HSumMany(const __m512* v, float* out) {
  static_assert(N >= 1 && N <= 16);
  constexpr int n1 = (N + 1) / 2, n2 = (n1 + 1) / 2, n3 = (n2 + 1) / 2;
  const __m512 z = _mm512_setzero_ps();
  __m512 c[n1], d[n2], e[n3];
  R1_UNROLL
  for (int i = 0; i < n1; ++i) {  // 8 + 8: [a's | b's] sums of lanes l and l + 8
    const __m512 a = v[2 * i], b = 2 * i + 1 < N ? v[2 * i + 1] : z;
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee));
  }
  R1_UNROLL
  for (int i = 0; i < n2; ++i) {  // 4 + 4: one 128-bit quarter per vector
    const __m512 a = c[2 * i], b = 2 * i + 1 < n1 ? c[2 * i + 1] : z;
    d[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xdd));
  }
  R1_UNROLL
  for (int i = 0; i < n3; ++i) {  // 2 + 2 within each quarter
    const __m512 a = d[2 * i], b = 2 * i + 1 < n2 ? d[2 * i + 1] : z;
    e[i] = _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x44), _mm512_shuffle_ps(a, b, 0xee));
  }
  const __m512 a = e[0], b = n3 > 1 ? e[1] : z;  // 1 + 1
  const __m512 f = _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xdd));
  alignas(64) float t[16];
  _mm512_store_ps(t, f);
  R1_UNROLL
  for (int i = 0; i < N; ++i) out[i] = t[4 * (i % 4) + i / 4];
}

// res[j·rs + r] = (or +=, when accumulate) the lane sum of s[j·R + r].
template <int R, int J>
inline void StoreDots(const __m512* s, float* res, int64_t rs, bool accumulate) {
  float dots[R * J];
  if constexpr (R * J <= 16) {
    HSumMany<R * J>(s, dots);
  } else {
    HSumMany<16>(s, dots);
    HSumMany<R * J - 16>(s + 16, dots + 16);
  }
  if (accumulate) {
    R1_UNROLL
    for (int r = 0; r < R; ++r)
      R1_UNROLL
      for (int j = 0; j < J; ++j) res[j * rs + r] += dots[j * R + r];
  } else {
    R1_UNROLL
    for (int r = 0; r < R; ++r)
      R1_UNROLL
      for (int j = 0; j < J; ++j) res[j * rs + r] = dots[j * R + r];
  }
}

constexpr int64_t kBf16Chunk = 32;  // weights per 64-byte load
constexpr int64_t kFp8Chunk = 64;
// Software prefetch along each row stream: how far ahead (bytes) and into which cache.
//   * Long rows of bf16 / fp8 (the released models' K = 2048..7168): 512 B ahead within the row
//     into L1, and the hardware prefetcher does the rest (+10 % for bf16, +3 % for fp8 at K = 4096
//     / 7168 from DRAM on one core; 4 KiB there is no better for bf16 and 25 % worse for fp8; into
//     L2 instead, 4 inputs of bf16 ran 1.3x slower).
//   * Short rows (the small models' K = 256..1024): each stream moves to a new row every few steps
//     and the hardware prefetcher loses it, so the prefetch runs into the row groups that come
//     next: 4 KiB ahead for bf16 / fp8 (moe-small bf16 decode ~205 -> ~255 tokens/s on one stream,
//     ~505 -> ~570 on 16; 2 KiB: no gain on one stream; 8 KiB: less on 16; 16 KiB into L2: the
//     same as 4), and into L2, not L1: into L1 a core's stream from memory ran at ~8 GB/s against
//     25 GB/s for a plain streaming read (AMD EPYC, Zen 4), most likely because each such prefetch
//     holds one of the core's few L1 miss buffers until its line arrives. Into L2 there, moe-small
//     decode (bench_serve, A B): bf16 132-142 -> 193-234 tokens/s on one stream, 239-283 -> 375-426
//     on 4, 466-543 -> 613-725 on 16; fp8 152-179 -> 240-260, 335-349 -> 441-445, 560-584 ->
//     613-668.
//   * f32 rows (the live weights of training and GRPO rollouts): 16 KiB ahead into L2 whatever
//     their length. 200 expert-sized matrices (256 x 256, 52 MB, more than the last-level cache)
//     went from 32-35 to 15-27 µs each with 4-16 inputs (1 input: 33 -> 15 µs; 32 inputs: 58 ->
//     51 µs; hot in cache: 22 µs with 16 inputs), Zen 4, one core.
constexpr int64_t kShortRowBytes = 2048;
int64_t PrefetchBytes(DType dtype, int64_t row_bytes) {
  if (dtype == DType::kF32) return 16384;
  return row_bytes <= kShortRowBytes ? 4096 : 512;
}
bool PrefetchToL2(DType dtype, int64_t row_bytes) { return dtype == DType::kF32 || row_bytes <= kShortRowBytes; }

inline void Prefetch(const void* p, bool to_l2) {
  if (to_l2)
    _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1);
  else
    _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
}

// x for bf16 rows: per 32-column chunk, the 16 even then the 16 odd columns; zero-padded.
void PrepareXBf16(const float* x, int64_t K, float* xp) {
  const int64_t Kp = RoundUp(K, kBf16Chunk);
  for (int64_t c = 0; c < Kp; c += kBf16Chunk)
    for (int64_t j = 0; j < 16; ++j) {
      xp[c + j] = c + 2 * j < K ? x[c + 2 * j] : 0.0f;
      xp[c + 16 + j] = c + 2 * j + 1 < K ? x[c + 2 * j + 1] : 0.0f;
    }
}

// x for fp8 rows, per 64-column chunk, in the order the decode produces f32 vectors: unpacklo /
// unpackhi of bytes work within 128-bit lanes, so vector A holds columns 16ℓ+2j, B 16ℓ+2j+1,
// C 16ℓ+8+2j, D 16ℓ+9+2j (lane ℓ = 0..3, j = 0..3 → dword 4ℓ+j).
void PrepareXFp8(const float* x, int64_t K, float* xp) {
  const int64_t Kp = RoundUp(K, kFp8Chunk);
  auto X = [&](int64_t k) { return k < K ? x[k] : 0.0f; };
  for (int64_t c = 0; c < Kp; c += kFp8Chunk)
    for (int64_t l = 0; l < 4; ++l)
      for (int64_t j = 0; j < 4; ++j) {
        xp[c + 4 * l + j] = X(c + 16 * l + 2 * j);
        xp[c + 16 + 4 * l + j] = X(c + 16 * l + 2 * j + 1);
        xp[c + 32 + 4 * l + j] = X(c + 16 * l + 8 + 2 * j);
        xp[c + 48 + 4 * l + j] = X(c + 16 * l + 9 + 2 * j);
      }
}

// The high and low bytes of the bf16 (= f32 >> 16) of each e4m3 magnitude 0..127, as the four
// 64-byte vpermi2b tables: hi[0..63], hi[64..127], lo[0..63], lo[64..127].
struct Fp8Tables {
  alignas(64) uint8_t hi[128];
  alignas(64) uint8_t lo[128];
  Fp8Tables() {
    for (int m = 0; m < 128; ++m) {
      uint32_t bits;
      std::memcpy(&bits, &kFp8E4M3ToF32[m], 4);
      R1_CHECK((bits & 0xffff) == 0) << "e4m3 magnitude " << m << " is not a bf16";
      hi[m] = static_cast<uint8_t>(bits >> 24);
      lo[m] = static_cast<uint8_t>(bits >> 16);
    }
  }
};
const Fp8Tables& Tables() {
  static const Fp8Tables t;
  return t;
}

// The row kernels below take R weight rows and J inputs at a time: each weight vector is loaded
// (and, for bf16/fp8, widened) once and used by all J inputs, so a batch of T decode rows streams
// the weights once instead of T times. Every (row, input) pair owns its accumulators and sees the
// same operation sequence whatever R, J and the input's position in the batch are: batched rows
// are bit-identical to the T == 1 GEMV (which is the J == 1 instance).
//   x: J inputs, input j at x + j·xs (prepared for the dtype); w: R rows, row stride K;
//   res[j·rs + r] = Σ_k x_j[k]·w[r][k].

// R rows of f32 weights; pf: prefetch distance in weights (PrefetchBytes). One
// accumulator per (row, input) pair, 16 columns a step: a pass of 4 rows x 6 inputs loads 10
// vectors per 24 FMAs (2 x 6 with two accumulators each loaded 16: 113-118 -> 133-137 GFLOP/s on
// one core at K = 256, hot cache). With T == 1 the kernel takes 8 rows a pass, so that 8
// independent FMA chains hide the FMA latency. With J < 5 the weight vectors are held in registers
// (InRegister): GCC otherwise folds each one's load into its J FMAs, and the 4 x 4 pass then
// loaded 20 vectors per 16 FMAs (4 x 4 at K = 256, hot: 10.0 -> 6.6 µs a matrix; 4 x 2 and 4 x 3
// alike). At J = 5 and 6 it keeps them in registers by itself, and forcing it there cost 10-18 %.
template <int R, int J>
void RowsF32(const float* __restrict x, int64_t xs, const float* __restrict w, int64_t K,
             int64_t pf, float* res, int64_t rs, bool accumulate) {
  const bool l2 = PrefetchToL2(DType::kF32, K * 4);
  __m512 a[R][J];
  R1_UNROLL
  for (int r = 0; r < R; ++r)
    R1_UNROLL
    for (int j = 0; j < J; ++j) a[r][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 wv[R];
    R1_UNROLL
    for (int r = 0; r < R; ++r) {
      Prefetch(w + r * K + k + pf, l2);
      wv[r] = _mm512_loadu_ps(w + r * K + k);
      if constexpr (J < 5) wv[r] = InRegister(wv[r]);
    }
    R1_UNROLL
    for (int j = 0; j < J; ++j) {
      const __m512 xv = InRegister(_mm512_loadu_ps(x + j * xs + k));
      R1_UNROLL
      for (int r = 0; r < R; ++r) a[r][j] = _mm512_fmadd_ps(xv, wv[r], a[r][j]);
    }
  }
  if (k < K) {  // the last 1..15 columns, masked
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
    __m512 wv[R];
    R1_UNROLL
    for (int r = 0; r < R; ++r) wv[r] = _mm512_maskz_loadu_ps(m, w + r * K + k);
    R1_UNROLL
    for (int j = 0; j < J; ++j) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + j * xs + k);
      R1_UNROLL
      for (int r = 0; r < R; ++r) a[r][j] = _mm512_fmadd_ps(xv, wv[r], a[r][j]);
    }
  }
  __m512 s[R * J];
  R1_UNROLL
  for (int r = 0; r < R; ++r)
    R1_UNROLL
    for (int j = 0; j < J; ++j) s[j * R + r] = a[r][j];
  StoreDots<R, J>(s, res, rs, accumulate);
}

// R rows of bf16 weights; x from PrepareXBf16; pf as for RowsF32.
template <int R, int J>
void RowsBf16(const float* __restrict xp, int64_t xs, const uint16_t* __restrict w, int64_t K,
              int64_t pf, float* res, int64_t rs, bool accumulate) {
  const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  const bool l2 = PrefetchToL2(DType::kBF16, K * 2);
  __m512 a0[R][J], a1[R][J];
  R1_UNROLL
  for (int r = 0; r < R; ++r)
    R1_UNROLL
    for (int j = 0; j < J; ++j) a0[r][j] = a1[r][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += kBf16Chunk) {
    const __mmask32 m = K - k >= kBf16Chunk ? ~__mmask32{0} : static_cast<__mmask32>((1u << (K - k)) - 1);
    __m512 we[R], wo[R];
    R1_UNROLL
    for (int r = 0; r < R; ++r) {
      Prefetch(w + r * K + k + pf, l2);
      const __m512i v = _mm512_maskz_loadu_epi16(m, w + r * K + k);
      we[r] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
      wo[r] = _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask));
    }
    R1_UNROLL
    for (int j = 0; j < J; ++j) {
      const __m512 xe = InRegister(_mm512_loadu_ps(xp + j * xs + k));
      const __m512 xo = InRegister(_mm512_loadu_ps(xp + j * xs + k + 16));
      R1_UNROLL
      for (int r = 0; r < R; ++r) {
        a0[r][j] = _mm512_fmadd_ps(xe, we[r], a0[r][j]);
        a1[r][j] = _mm512_fmadd_ps(xo, wo[r], a1[r][j]);
      }
    }
  }
  __m512 s[R * J];
  R1_UNROLL
  for (int r = 0; r < R; ++r)
    R1_UNROLL
    for (int j = 0; j < J; ++j) s[j * R + r] = _mm512_add_ps(a0[r][j], a1[r][j]);
  StoreDots<R, J>(s, res, rs, accumulate);
}

// R rows of fp8 weights; x from PrepareXFp8; pf as for RowsF32; srow[r]: that row's block
// multipliers or null.
template <int R, int J>
void RowsFp8(const float* __restrict xp, int64_t xs, const uint8_t* __restrict w, int64_t K,
             int64_t pf, const float* const* srow, float* res, int64_t rs, bool accumulate) {
  const Fp8Tables& t = Tables();
  const __m512i hi0 = _mm512_load_si512(t.hi), hi1 = _mm512_load_si512(t.hi + 64);
  const __m512i lo0 = _mm512_load_si512(t.lo), lo1 = _mm512_load_si512(t.lo + 64);
  const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  const bool l2 = PrefetchToL2(DType::kF8E4M3, K);
  __m512 total[R][J];
  R1_UNROLL
  for (int r = 0; r < R; ++r)
    R1_UNROLL
    for (int j = 0; j < J; ++j) total[r][j] = _mm512_setzero_ps();
  for (int64_t k0 = 0, b = 0; k0 < K; k0 += kFp8Block, ++b) {
    const int64_t k1 = std::min(K, k0 + kFp8Block);
    __m512 a0[R][J], a1[R][J];
    R1_UNROLL
    for (int r = 0; r < R; ++r)
      R1_UNROLL
      for (int j = 0; j < J; ++j) a0[r][j] = a1[r][j] = _mm512_setzero_ps();
    for (int64_t k = k0; k < k1; k += kFp8Chunk) {
      const __mmask64 m =
          k1 - k >= kFp8Chunk ? ~__mmask64{0} : (__mmask64{1} << (k1 - k)) - 1;
      __m512 wa[R], wb[R], wc[R], wd[R];
      R1_UNROLL
      for (int r = 0; r < R; ++r) {
        Prefetch(w + r * K + k + pf, l2);
        const __m512i codes = _mm512_maskz_loadu_epi8(m, w + r * K + k);
        // bf16 high byte: table (index bits 0..6) | sign bit of the code.
        const __m512i hb = _mm512_ternarylogic_epi32(
            _mm512_permutex2var_epi8(hi0, codes, hi1), codes, sign, 0xf8);
        const __m512i lb = _mm512_permutex2var_epi8(lo0, codes, lo1);
        const __m512i wl = _mm512_unpacklo_epi8(lb, hb), wh = _mm512_unpackhi_epi8(lb, hb);
        wa[r] = _mm512_castsi512_ps(_mm512_slli_epi32(wl, 16));
        wb[r] = _mm512_castsi512_ps(_mm512_and_si512(wl, hi_mask));
        wc[r] = _mm512_castsi512_ps(_mm512_slli_epi32(wh, 16));
        wd[r] = _mm512_castsi512_ps(_mm512_and_si512(wh, hi_mask));
      }
      R1_UNROLL
      for (int j = 0; j < J; ++j) {
        const float* xj = xp + j * xs + k;
        const __m512 xa = _mm512_loadu_ps(xj), xb = _mm512_loadu_ps(xj + 16);
        const __m512 xc = _mm512_loadu_ps(xj + 32), xd = _mm512_loadu_ps(xj + 48);
        R1_UNROLL
        for (int r = 0; r < R; ++r) {
          a0[r][j] = _mm512_fmadd_ps(xa, wa[r], a0[r][j]);
          a1[r][j] = _mm512_fmadd_ps(xb, wb[r], a1[r][j]);
          a0[r][j] = _mm512_fmadd_ps(xc, wc[r], a0[r][j]);
          a1[r][j] = _mm512_fmadd_ps(xd, wd[r], a1[r][j]);
        }
      }
    }
    R1_UNROLL
    for (int r = 0; r < R; ++r) {
      const __m512 s = _mm512_set1_ps(srow[r] ? srow[r][b] : 1.0f);
      R1_UNROLL
      for (int j = 0; j < J; ++j)
        total[r][j] = _mm512_fmadd_ps(_mm512_add_ps(a0[r][j], a1[r][j]), s, total[r][j]);
    }
  }
  __m512 s[R * J];
  R1_UNROLL
  for (int r = 0; r < R; ++r)
    R1_UNROLL
    for (int j = 0; j < J; ++j) s[j * R + r] = total[r][j];
  StoreDots<R, J>(s, res, rs, accumulate);
}

// Inputs per pass of the batched kernels and rows per pass for T > 1, per dtype: 2·R·J
// accumulators (fp8: 3·R·J) plus the widened weights fit the 32 vector registers. T == 1 keeps
// kRows rows per pass.
constexpr int kBatchInputs = 6;
constexpr int BatchRows(DType d) { return d == DType::kF8E4M3 ? 1 : d == DType::kF32 ? 4 : 2; }
constexpr int64_t kRowsF32Single = 8;  // f32 rows per pass for T == 1 (see RowsF32)

// The passes RowsPrepared runs (J <= kBatchInputs): up to BatchRows rows with any J, and with
// T == 1 (J == 1) up to 8 rows of f32 or kRows of the others.
constexpr bool PassFits(DType d, int R, int J) {
  return R <= BatchRows(d) || (J == 1 && R <= (d == DType::kF32 ? kRowsF32Single : kRows));
}

// R rows at n of any dtype, J inputs (input j at x + j·xs), prefetching pf weights ahead;
// out[j·ldo + r] (=|+=).
template <int R, int J>
void RowsAny(const float* x, int64_t xs, const TensorView& w, int64_t pf, int64_t n, float* out, int64_t ldo,
             bool acc) {
  const int64_t K = w.cols();
  switch (w.dtype) {
    case DType::kF32:
      if constexpr (PassFits(DType::kF32, R, J)) {
        RowsF32<R, J>(x, xs, static_cast<const float*>(w.data) + n * K, K, pf, out, ldo, acc);
        return;
      }
      break;
    case DType::kBF16:
      if constexpr (PassFits(DType::kBF16, R, J)) {
        RowsBf16<R, J>(x, xs, static_cast<const uint16_t*>(w.data) + n * K, K, pf, out, ldo, acc);
        return;
      }
      break;
    case DType::kF8E4M3:
      if constexpr (PassFits(DType::kF8E4M3, R, J)) {
        const float* srow[R];
        R1_UNROLL
        for (int r = 0; r < R; ++r)
          srow[r] = w.scale_inv ? w.scale_inv + ((n + r) / kFp8Block) * w.scale_cols() : nullptr;
        RowsFp8<R, J>(x, xs, static_cast<const uint8_t*>(w.data) + n * K, K, pf, srow, out, ldo, acc);
        return;
      }
      break;
  }
  R1_CHECK(false) << "no " << R << " x " << J << " pass for " << DTypeName(w.dtype);
}

// R rows at n for all T inputs, kBatchInputs at a time; out[t·ldo + r] (=|+=).
template <int R>
void PassRows(const float* x, int64_t xs, int64_t T, const TensorView& w, int64_t pf, int64_t n, float* out,
              int64_t ldo, bool acc) {
  for (int64_t t0 = 0; t0 < T; t0 += kBatchInputs) {
    const float* xt = x + t0 * xs;
    float* ot = out + t0 * ldo;
    switch (std::min<int64_t>(kBatchInputs, T - t0)) {
      case 1: RowsAny<R, 1>(xt, xs, w, pf, n, ot, ldo, acc); break;
      case 2: RowsAny<R, 2>(xt, xs, w, pf, n, ot, ldo, acc); break;
      case 3: RowsAny<R, 3>(xt, xs, w, pf, n, ot, ldo, acc); break;
      case 4: RowsAny<R, 4>(xt, xs, w, pf, n, ot, ldo, acc); break;
      case 5: RowsAny<R, 5>(xt, xs, w, pf, n, ot, ldo, acc); break;
      default: RowsAny<R, kBatchInputs>(xt, xs, w, pf, n, ot, ldo, acc); break;
    }
  }
}

// Rows [row_begin, row_end) for T <= kMaxBatch inputs prepared for w's dtype (input t at
// xp + t·xs); writes out[t·ldo + (n − row_begin)] (=|+=), each result straight from its pass.
// Passes of the most rows that fit (8 for f32 and 4 for the others at T == 1, BatchRows at
// T > 1), the rest in 4, 2 and single rows; a row's result does not depend on its pass.
void RowsPrepared(const float* xp, int64_t xs, int64_t T, const TensorView& w, int64_t row_begin,
                  int64_t row_end, float* out, int64_t ldo, bool accumulate) {
  R1_CHECK(T >= 1 && T <= kMaxBatch);
  const int64_t group =
      T == 1 ? (w.dtype == DType::kF32 ? kRowsF32Single : kRows) : static_cast<int64_t>(BatchRows(w.dtype));
  const int64_t esize = static_cast<int64_t>(DTypeSize(w.dtype));
  const int64_t pf = PrefetchBytes(w.dtype, w.cols() * esize) / esize;  // in weights
  for (int64_t n = row_begin; n < row_end;) {
    const int64_t left = std::min(group, row_end - n);
    float* o = out + (n - row_begin);
    int64_t rows = 1;
    if (left >= kRowsF32Single) {
      rows = kRowsF32Single;
      PassRows<kRowsF32Single>(xp, xs, T, w, pf, n, o, ldo, accumulate);
    } else if (left >= 4) {
      rows = 4;
      PassRows<4>(xp, xs, T, w, pf, n, o, ldo, accumulate);
    } else if (left >= 2) {
      rows = 2;
      PassRows<2>(xp, xs, T, w, pf, n, o, ldo, accumulate);
    } else {
      PassRows<1>(xp, xs, T, w, pf, n, o, ldo, accumulate);
    }
    n += rows;
  }
}

// Padded length of one prepared input: a whole number of 64-byte lines, so that every input of a
// batch starts on a line.
int64_t PreparedLength(const TensorView& w) {
  const int64_t K = w.cols();
  switch (w.dtype) {
    case DType::kF32: return RoundUp(K, 16);
    case DType::kBF16: return RoundUp(K, kBf16Chunk);
    case DType::kF8E4M3: return RoundUp(K, kFp8Chunk);
  }
  return K;
}

bool LineAligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }

// T inputs (input t at x + t·x_stride; x_stride 0 means K) as the row kernels of w's dtype read
// them, input t at result + t·(*xs); points into `buf` unless x is used as is. The kernels load
// every input vector once per row group, so the inputs start on 64-byte lines: a load that
// straddles two lines costs two load slots (the batched f32/bf16 kernels ran ~1.4x slower on
// inputs 16 bytes off a line).
const float* PrepareX(const float* x, int64_t T, const TensorView& w, ScratchVector<float>& buf, int64_t* xs,
                      int64_t x_stride = 0) {
  const int64_t K = w.cols();
  if (x_stride == 0) x_stride = K;
  *xs = PreparedLength(w);
  if (w.dtype == DType::kF32 && x_stride == *xs && LineAligned(x)) return x;
  buf.resize(static_cast<size_t>(T * *xs + 16));
  float* base = buf.data();
  base += (16 - reinterpret_cast<uintptr_t>(base) / sizeof(float) % 16) % 16;
  for (int64_t t = 0; t < T; ++t) {
    const float* xt = x + t * x_stride;
    float* dst = base + t * *xs;
    // buf is not zeroed when it grows: every word up to *xs is written (the row kernels read them).
    if (w.dtype == DType::kBF16) PrepareXBf16(xt, K, dst);
    else if (w.dtype == DType::kF8E4M3) PrepareXFp8(xt, K, dst);
    else {
      std::copy_n(xt, K, dst);
      std::fill(dst + K, dst + *xs, 0.0f);
    }
  }
  return base;
}

#else  // portable scalar fallback (builds without AVX-512 VBMI)

int64_t PreparedLength(const TensorView& w) { return w.cols(); }
const float* PrepareX(const float* x, int64_t T, const TensorView& w, ScratchVector<float>& buf, int64_t* xs,
                      int64_t x_stride = 0) {
  const int64_t K = w.cols();
  *xs = K;
  if (x_stride == 0 || x_stride == K) return x;
  buf.resize(static_cast<size_t>(T * K));
  for (int64_t t = 0; t < T; ++t) std::copy_n(x + t * x_stride, K, buf.data() + t * K);
  return buf.data();
}

// Each (row, input) dot product in the same order whatever T is.
void RowsPrepared(const float* xp, int64_t xs, int64_t T, const TensorView& w, int64_t row_begin,
                  int64_t row_end, float* out, int64_t ldo, bool accumulate) {
  const int64_t K = w.cols();
  for (int64_t n = row_begin; n < row_end; ++n)
    for (int64_t t = 0; t < T; ++t) {
      const float* x = xp + t * xs;
      float v = 0.0f;
      switch (w.dtype) {
        case DType::kF32: {
          const float* p = static_cast<const float*>(w.data) + n * K;
          for (int64_t k = 0; k < K; ++k) v += x[k] * p[k];
          break;
        }
        case DType::kBF16: {
          const uint16_t* p = static_cast<const uint16_t*>(w.data) + n * K;
          for (int64_t k = 0; k < K; ++k) v += x[k] * Bf16ToF32(p[k]);
          break;
        }
        case DType::kF8E4M3: {
          const uint8_t* p = static_cast<const uint8_t*>(w.data) + n * K;
          const float* srow = w.scale_inv ? w.scale_inv + (n / kFp8Block) * w.scale_cols() : nullptr;
          for (int64_t k0 = 0; k0 < K; k0 += kFp8Block) {
            float seg = 0.0f;
            for (int64_t k = k0; k < std::min(K, k0 + kFp8Block); ++k) seg += x[k] * Fp8E4M3ToF32(p[k]);
            v += seg * (srow ? srow[k0 / kFp8Block] : 1.0f);
          }
          break;
        }
      }
      float& o = out[t * ldo + (n - row_begin)];
      o = accumulate ? o + v : v;
    }
}

#endif

// out (T, ldo) (=|+=) x (T, K) · wᵀ over all rows, T <= kMaxBatch: OpenMP over 16-row chunks
// when the product is big enough to be worth waking the team.
void BatchedGemv(const float* x, int64_t T, const TensorView& w, float* out, bool accumulate) {
  const int64_t N = w.rows();
  thread_local ScratchVector<float> buf;
  int64_t xs = 0;
  const float* xp = PrepareX(x, T, w, buf, &xs);
  const bool parallel =
      N * w.cols() * T >= (1 << 15) && N > 16 && omp_get_max_threads() > 1 && !omp_in_parallel();
  if (!parallel) {
    RowsPrepared(xp, xs, T, w, 0, N, out, N, accumulate);
    return;
  }
  // Dynamic: on shared cores a thread that another process delays holds up one chunk, not a
  // fixed half of the matrix. Chunks of up to 128 rows, at least four per thread: every chunk
  // starts its row streams cold (the prefetch runs ahead within a chunk, and the next chunk is
  // usually the other thread's), so 16-row chunks cost moe-small decode ~15 % (one stream
  // 209-215 -> 241-260 tokens/s with 64 rows, A B).
  const int64_t chunk = std::clamp<int64_t>(N / (4 * omp_get_max_threads()) / 16 * 16, 16, 128);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t n0 = 0; n0 < N; n0 += chunk)
    RowsPrepared(xp, xs, T, w, n0, std::min(N, n0 + chunk), out + n0, N, accumulate);
}

// Products by a weight's packed bf16 copy (TensorView::bf16_packed), any T. Work items are
// blocks of up to kPackedRowBlock rows (their packed inputs stay in L2 while the weight panels
// stream past) by chunks of kPackedColumns columns, shared out dynamically when the product is
// big enough to wake the team; each element is the same sum whichever item computes it.
constexpr int64_t kPackedRowBlock = 144;
constexpr int64_t kPackedColumns = 128;
static_assert(kPackedColumns % kPackedBf16Columns == 0);

// x's T rows (row t at x + t·ldx) packed into buf.
const uint32_t* PackedInputs(const float* x, int64_t T, int64_t ldx, int64_t K, ScratchVector<uint32_t>& buf) {
  buf.resize(static_cast<size_t>(PackedBf16RowsWords(T, K)));
  PackBf16Rows(x, T, ldx, K, buf.data());
  return buf.data();
}

// Products of the same input x (T, K) by packed bf16 weights: x is packed once, in row blocks.
struct PackedJob {
  const uint32_t* packed;
  int64_t N;
  float* out;
  bool accumulate;
};

void PackedBf16Products(const float* x, int64_t T, int64_t K, std::span<const PackedJob> jobs) {
  const int64_t row_blocks = (T + kPackedRowBlock - 1) / kPackedRowBlock;
  thread_local std::vector<ScratchVector<uint32_t>> bufs;
  if (static_cast<int64_t>(bufs.size()) < row_blocks) bufs.resize(static_cast<size_t>(row_blocks));
  std::vector<const uint32_t*> xp(static_cast<size_t>(row_blocks));
  for (int64_t b = 0; b < row_blocks; ++b) {
    const int64_t t0 = b * kPackedRowBlock;
    xp[static_cast<size_t>(b)] =
        PackedInputs(x + t0 * K, std::min(kPackedRowBlock, T - t0), K, K, bufs[static_cast<size_t>(b)]);
  }
  // Work items: (job, row block, column chunk), job by job.
  std::vector<int64_t> first_item(jobs.size() + 1, 0);
  for (size_t j = 0; j < jobs.size(); ++j)
    first_item[j + 1] = first_item[j] + row_blocks * ((jobs[j].N + kPackedColumns - 1) / kPackedColumns);
  auto item = [&](int64_t i) {
    const size_t j =
        static_cast<size_t>(std::upper_bound(first_item.begin(), first_item.end(), i) - first_item.begin()) - 1;
    const PackedJob& m = jobs[j];
    const int64_t col_chunks = (m.N + kPackedColumns - 1) / kPackedColumns, r = i - first_item[j];
    const int64_t b = r / col_chunks, n0 = r % col_chunks * kPackedColumns, t0 = b * kPackedRowBlock;
    PackedBf16Product(xp[static_cast<size_t>(b)], std::min(kPackedRowBlock, T - t0), K, m.packed, m.N, n0,
                      std::min(m.N, n0 + kPackedColumns), m.out + t0 * m.N + n0, m.N, m.accumulate);
  };
  int64_t total_n = 0;
  for (const PackedJob& m : jobs) total_n += m.N;
  const int64_t items = first_item.back();
  const bool parallel = total_n * K * T >= (1 << 15) && items > 1 && omp_get_max_threads() > 1 && !omp_in_parallel();
  if (!parallel) {
    for (int64_t i = 0; i < items; ++i) item(i);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < items; ++i) item(i);
}

}  // namespace

void PackedBf16MatMul(const float* x, int64_t T, int64_t K, const uint32_t* packed, int64_t N, float* out,
                      bool accumulate) {
  const PackedJob job{packed, N, out, accumulate};
  PackedBf16Products(x, T, K, std::span(&job, 1));
}

void MatMulSharedInput(const float* x, int64_t T, std::span<const SharedInputJob> jobs) {
  if (T <= 0 || jobs.empty()) return;
  const int64_t K = jobs[0].w->cols();
  const bool packed = std::all_of(jobs.begin(), jobs.end(), [&](const SharedInputJob& j) {
    return j.w->bf16_packed != nullptr && j.w->cols() == K;
  });
  if (!packed) {
    for (const SharedInputJob& j : jobs) MatMul(x, T, *j.w, j.out, j.accumulate);
    return;
  }
  std::vector<PackedJob> pj;
  for (const SharedInputJob& j : jobs) pj.push_back({j.w->bf16_packed, j.w->rows(), j.out, j.accumulate});
  PackedBf16Products(x, T, K, pj);
}

void GemvRows(const float* x, const TensorView& w, int64_t row_begin, int64_t row_end, float* out,
              bool accumulate) {
  GemvRowsBatch(x, 1, 0, w, row_begin, row_end, out + row_begin, 0, accumulate);
}

void GemvRowsBatch(const float* x, int64_t T, int64_t x_stride, const TensorView& w, int64_t row_begin,
                   int64_t row_end, float* out, int64_t ldo, bool accumulate) {
  if (w.bf16_packed) {
    thread_local ScratchVector<uint32_t> packed;
    const int64_t K = w.cols();
    PackedBf16Product(PackedInputs(x, T, x_stride == 0 ? K : x_stride, K, packed), T, K, w.bf16_packed, w.rows(),
                      row_begin, row_end, out, ldo, accumulate);
    return;
  }
  thread_local ScratchVector<float> buf;
  int64_t xs = 0;
  const float* xp = PrepareX(x, T, w, buf, &xs, x_stride);
  RowsPrepared(xp, xs, T, w, row_begin, row_end, out, ldo, accumulate);
}

void MatMulMany(const std::vector<MatMulJob>& jobs) {
  // Rows per work item, a multiple of every rows-per-pass: long enough that the prefetch runs
  // ahead within it (each item starts cold), short enough that a layer's experts still make
  // dozens of items. 128 against 32: moe-small bench_serve 4 / 16 streams +8 % / +4 % (A B, 6
  // rounds).
  constexpr int64_t kChunk = 128;
  std::vector<ScratchVector<float>> bufs(jobs.size());
  std::vector<ScratchVector<uint32_t>> packed(jobs.size());  // inputs of products by packed bf16 weights
  std::vector<const float*> xp(jobs.size());
  std::vector<const uint32_t*> xq(jobs.size());
  std::vector<int64_t> xs(jobs.size());
  std::vector<std::pair<size_t, int64_t>> items;  // (job, first row)
  for (size_t j = 0; j < jobs.size(); ++j) {
    const MatMulJob& m = jobs[j];
    if (m.T > kMaxBatchGemv) {
      if (j + 1 < jobs.size() && jobs[j + 1].x == m.x && jobs[j + 1].T == m.T) {  // gate and up: x packed once
        const SharedInputJob pair[2] = {{m.w, m.out, m.accumulate},
                                        {jobs[j + 1].w, jobs[j + 1].out, jobs[j + 1].accumulate}};
        MatMulSharedInput(m.x, m.T, pair);
        ++j;
      } else {
        MatMul(m.x, m.T, *m.w, m.out, m.accumulate);
      }
      continue;
    }
    if (m.T <= 0) continue;
    if (m.w->bf16_packed) {
      // Consecutive products of the same input (an expert's gate and up) share its packed rows.
      const MatMulJob* prev = j > 0 && xq[j - 1] ? &jobs[j - 1] : nullptr;
      if (prev && prev->x == m.x && prev->T == m.T && prev->w->cols() == m.w->cols())
        xq[j] = xq[j - 1];
      else
        xq[j] = PackedInputs(m.x, m.T, m.w->cols(), m.w->cols(), packed[j]);
    } else
      xp[j] = PrepareX(m.x, m.T, *m.w, bufs[j], &xs[j]);
    for (int64_t n0 = 0; n0 < m.w->rows(); n0 += kChunk) items.emplace_back(j, n0);
  }
  ParallelFor(
      static_cast<int64_t>(items.size()), true,
      [&](int64_t i) {
        const auto [j, n0] = items[static_cast<size_t>(i)];
        const MatMulJob& m = jobs[j];
        const int64_t N = m.w->rows();
        if (xq[j]) {
          PackedBf16Product(xq[j], m.T, m.w->cols(), m.w->bf16_packed, N, n0, std::min(N, n0 + kChunk), m.out + n0,
                            N, m.accumulate);
          return;
        }
        RowsPrepared(xp[j], xs[j], m.T, *m.w, n0, std::min(N, n0 + kChunk), m.out + n0, N, m.accumulate);
      },
      Schedule::kDynamic);
}

void Gemv(const float* x, const TensorView& w, float* out, bool accumulate) {
  if (w.bf16_packed) return PackedBf16MatMul(x, 1, w.cols(), w.bf16_packed, w.rows(), out, accumulate);
  BatchedGemv(x, 1, w, out, accumulate);
}

void MatMul(const float* x, int64_t T, const TensorView& w, float* out, bool accumulate) {
  MatMul(x, T, w, out, accumulate, CurrentGemmPrecision());
}

void MatMul(const float* x, int64_t T, const TensorView& w, float* out, bool accumulate, GemmPrecision precision) {
  const int64_t N = w.rows(), K = w.cols();
  if (w.bf16_packed) {  // a packed bf16 copy: always its product
    if (T > 0) PackedBf16MatMul(x, T, w.cols(), w.bf16_packed, w.rows(), out, accumulate);
    return;
  }
  // Few rows go to the GEMV, in f32; with bf16 products every product is Sgemm's.
  if (T <= kMaxBatchGemv && precision == GemmPrecision::kF32) {
    if (T > 0) BatchedGemv(x, T, w, out, accumulate);
    return;
  }
  if (w.dtype == DType::kF32) {
    Sgemm(precision, false, true, T, N, K, 1.0f, x, K, w.f32(), K, accumulate ? 1.0f : 0.0f, out, N);
    return;
  }
  // Dequantize a panel of rows of w at a time and multiply it in.
  const int64_t panel = std::max<int64_t>(1, std::min<int64_t>(N, (1 << 20) / std::max<int64_t>(K, 1)));
  std::vector<float> wf(static_cast<size_t>(panel * K));
  for (int64_t n0 = 0; n0 < N; n0 += panel) {
    const int64_t rows = std::min(panel, N - n0);
#pragma omp parallel for schedule(static) if (rows * K >= (1 << 16))
    for (int64_t r = 0; r < rows; ++r) w.RowToF32(n0 + r, wf.data() + r * K);
    Sgemm(precision, false, true, T, rows, K, 1.0f, x, K, wf.data(), K, accumulate ? 1.0f : 0.0f, out + n0, N);
  }
}

}  // namespace r1::kernels
