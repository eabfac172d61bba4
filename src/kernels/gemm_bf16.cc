// The bf16 product of one thread: C = alpha · op(A) · op(B) + beta · C with f32 operands rounded to
// bf16 (nearest, ties to even, subnormals flushed to zero) as they are packed, and f32 accumulation.
//
// Blocking as in BLIS: for each block of kNc columns, for each block of kKc k, op(B)'s block is
// packed into 32-column panels; for each block of kMc rows op(A)'s block is packed into 12-row
// panels; the micro-kernel then multiplies a 12-row panel by a 32-column panel into a 12 × 32 tile
// of C held in 24 registers. Packed operands are "pair words": a 32-bit word holds the bf16 of
// elements k (low half) and k + 1 (high half) — the operand of AVX512_BF16's vdpbf16ps, which adds
// both products of a pair into an f32 lane. Odd k and row or column tails are padded with zeros.
//
// Every element of C is the same sum whatever the blocking of rows and columns around it (k
// blocks start at 0 and have a fixed size), so bands of C on different threads give the bits of
// the whole product.
//
// Where the CPU has AMX (Intel Xeons from Sapphire Rapids on) the same packed operands go to its
// tiles instead (Bf16Engine::kAmx): a row-major block of op(A) is already the layout of a tile of
// 16 rows × 32 k, and 16 pairs of a B panel's 16 columns that of the other operand, so one
// tdpbf16ps adds 16 × 16 × 32 products into a tile of C. Pair counts are padded to multiples of 16
// with zeros in every packing (both engines; the vector kernel skips the padding) so that tiles
// never read past k; rows past M only make rows of C that are never stored. The tiles start from
// C itself when alpha is 1 and beta 0 or 1 (the products' usual case), otherwise from zero with
// alpha and beta applied after; either way each element's sum runs over the k steps in order
// whatever the blocking, as for the vector kernel.

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "core/check.h"
#include "core/dtype.h"
#include "core/memory.h"
#include "kernels/gemm.h"
#include "kernels/simd.h"

namespace r1::kernels {
namespace {

constexpr int kMr = 12;       // rows of a micro-tile
constexpr int kNr = 32;       // columns of a micro-tile (two 16-lane registers)
constexpr int64_t kKc = 512;  // k per block: a K of up to 512 makes one pass over C
constexpr int64_t kPairs = kKc / 2;
constexpr int64_t kMc = 12 * kMr;  // rows per packed A block (~72 KB: stays in L2)
constexpr int64_t kNc = 1024;      // columns per packed B block
static_assert(kNr == kPackedBf16Columns);
constexpr int64_t kTilePairs = 16;  // pairs (32 k) in one AMX tile row: packed pair counts are multiples
constexpr int64_t kTileRows = 16;
// Rows of a packed block of input rows are padded to a multiple of both engines' row tiles (12 and
// 16), so that a tile of either starting inside the block stays inside it.
constexpr int64_t kRowsAlign = 48;
static_assert(kRowsAlign % kMr == 0 && kRowsAlign % kTileRows == 0 && kPairs % kTilePairs == 0);

constexpr int64_t PadPairs(int64_t pairs) { return (pairs + kTilePairs - 1) / kTilePairs * kTilePairs; }

using Words = ScratchVector<uint32_t>;

// An operand's bf16: F32ToBf16 (nearest, ties to even; NaN stays a quiet NaN) with subnormal
// inputs flushed to zero of their sign, which is what AVX512_BF16's vcvtne2ps2bf16 computes (one
// instruction for 32 floats where the rounding by integer operations took ~16); vdpbf16ps reads
// subnormal bf16 as zero anyway, so products are unchanged by the flush, and the emulation
// without AVX512_BF16 now agrees with the instruction on them.
inline uint16_t OperandBf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  return (u & 0x7f800000u) == 0 ? static_cast<uint16_t>(u >> 16 & 0x8000u) : F32ToBf16(f);
}

inline uint32_t PairWord(float even, float odd) {
  return static_cast<uint32_t>(OperandBf16(even)) | static_cast<uint32_t>(OperandBf16(odd)) << 16;
}

#if defined(__AVX512F__)
// Lanes [0, n) of 32 consecutive k: masks for their two halves.
inline std::pair<__mmask16, __mmask16> HalfMasks(int64_t n) { return {FirstLanes(n), FirstLanes(n - 16)}; }

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
// Pair words of 16 columns from two rows of k (even, odd): vcvtne2ps2bf16 gives the bf16 of
// even's 16 floats then of odd's, and a permute interleaves them.
inline __m512i PairWords(__m512 even, __m512 odd) {
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                              6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(interleave, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(odd, even)));
}

// Pair words of 32 consecutive k of one row (16 words), n of them valid (the rest zero): the bf16
// of the k in order are the pairs in order.
inline __m512i RowPairWords(const float* x, int64_t n) {
  const auto [m0, m1] = HalfMasks(n);
  return reinterpret_cast<__m512i>(
      _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, x + 16), _mm512_maskz_loadu_ps(m0, x)));
}
#else
// OperandBf16 of 16 floats, in the low halves of the lanes, by integer operations.
inline __m512i RoundToBf16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i top = _mm512_srli_epi32(u, 16);
  const __m512i lsb = _mm512_and_si512(top, _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(top, _mm512_set1_epi32(0x40)));
  const __mmask16 tiny = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000));  // zero or subnormal
  return _mm512_mask_mov_epi32(r, tiny, _mm512_and_si512(top, _mm512_set1_epi32(0x8000)));
}

inline __m512i PairWords(__m512 even, __m512 odd) {
  return _mm512_or_si512(RoundToBf16(even), _mm512_slli_epi32(RoundToBf16(odd), 16));
}

inline __m512i RowPairWords(const float* x, int64_t n) {
  const auto [m0, m1] = HalfMasks(n);
  const __m256i lo = _mm512_cvtepi32_epi16(RoundToBf16(_mm512_maskz_loadu_ps(m0, x)));
  const __m256i hi = _mm512_cvtepi32_epi16(RoundToBf16(_mm512_maskz_loadu_ps(m1, x + 16)));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
#endif
#endif

// Asks for the n floats at x ahead of their use: packing reads k runs of rows that lie far apart
// (a row of the LM head's gradient is 128 KB), too short for the hardware prefetcher to ramp up.
inline void PrefetchRun(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(x + i);
}

// Pair p of two k rows of a panel: rows `even` and `odd` (null past the end of k: zeros) give the
// words of their first n (≤ width ≤ 16) elements; dst[n, width) gets zeros. Reads `prefetch_n`
// elements of each row four k rows ahead.
inline void PackPairRow(const float* even, const float* odd, int64_t ld, bool ahead, int64_t prefetch_n, int64_t n,
                        int width, uint32_t* dst) {
  if (ahead) {
    PrefetchRun(even + 4 * ld, prefetch_n);
    PrefetchRun(even + 5 * ld, prefetch_n);
  }
#if defined(__AVX512F__)
  const __mmask16 m = FirstLanes(n);
  const __m512 e = _mm512_maskz_loadu_ps(m, even);
  const __m512 o = odd ? _mm512_maskz_loadu_ps(m, odd) : _mm512_setzero_ps();
  _mm512_mask_storeu_epi32(dst, FirstLanes(width), PairWords(e, o));
#else
  for (int j = 0; j < width; ++j) dst[j] = j < n ? PairWord(even[j], odd ? odd[j] : 0.0f) : 0u;
#endif
}

// op(B) rows [k0, k0 + kc) × columns [j0, j0 + nc) into 32-column panels of PadPairs(pairs) × 32
// words (word [p·32 + j] = columns j of k rows 2p and 2p + 1; the padding pairs zero). The loops
// run along the rows of b, so that reads stream instead of stepping down a column of cache lines.
void PackB(bool tb, const float* b, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc, uint32_t* out) {
  const int64_t pairs = (kc + 1) / 2, ppad = PadPairs(pairs);
  if (!tb) {  // op(B)(k, j) = b[k·ldb + j]: rows 2p and 2p + 1 of b give pair p of every panel
    for (int64_t p = 0; p < pairs; ++p) {
      const float* even = b + (k0 + 2 * p) * ldb + j0;
      const float* odd = 2 * p + 1 < kc ? even + ldb : nullptr;
      for (int64_t jp = 0; jp < nc; jp += kNr)
        for (int64_t h = 0; h < kNr; h += 16)
          PackPairRow(even + jp + h, odd ? odd + jp + h : nullptr, ldb, jp == 0 && h == 0 && 2 * p + 5 < kc, nc,
                      nc - jp - h, 16, out + jp / kNr * ppad * kNr + p * kNr + h);
    }
    for (int64_t jp = 0; jp < nc; jp += kNr)
      std::memset(out + jp / kNr * ppad * kNr + pairs * kNr, 0, static_cast<size_t>((ppad - pairs) * kNr) * 4);
    return;
  }
  // op(B)(k, j) = b[j·ldb + k]: each column's k run is contiguous
#if defined(__AVX512F__)
  // 16 columns at a time: each column's next 32 k give 16 pair words (one vector per column), and
  // a 16 x 16 transpose turns them into 16 pairs' runs of 16 columns, stored whole. One column at
  // a time with a store per word packed at ~0.29 ns a float on a Zen 4 core (hot); this at ~0.2.
  for (int64_t jp = 0; jp < nc; jp += kNr) {
    uint32_t* panel = out + jp / kNr * ppad * kNr;
    for (int64_t h = 0; h < kNr; h += 16) {
      const int64_t cols = std::clamp<int64_t>(nc - jp - h, 0, 16);
      const float* col0 = b + (j0 + jp + h) * ldb + k0;
      for (int64_t p0 = 0; p0 < pairs; p0 += 16) {
        __m512i w[16];
        for (int64_t j = 0; j < 16; ++j) {
          if (j >= cols) {
            w[j] = _mm512_setzero_si512();
            continue;
          }
          const float* x = col0 + j * ldb + 2 * p0;
          if (2 * p0 + 64 < kc) {
            __builtin_prefetch(x + 64);
            __builtin_prefetch(x + 80);
          }
          w[j] = RowPairWords(x, kc - 2 * p0);
        }
        Transpose16(w);  // pairs past k come out zero: ppad is a multiple of 16
        for (int64_t q = 0; q < 16; ++q) _mm512_storeu_si512(panel + (p0 + q) * kNr + h, w[q]);
      }
    }
  }
#else
  for (int64_t jp = 0; jp < nc; jp += kNr) {
    uint32_t* panel = out + jp / kNr * ppad * kNr;
    const int64_t cols = std::min<int64_t>(kNr, nc - jp);
    for (int64_t j = 0; j < kNr; ++j) {
      if (j >= cols) {
        for (int64_t p = 0; p < ppad; ++p) panel[p * kNr + j] = 0u;
        continue;
      }
      const float* col = b + (j0 + jp + j) * ldb + k0;
      if (jp + j + 2 < nc) PrefetchRun(col + 2 * ldb, kc);
      for (int64_t p = 0; p < ppad; ++p)
        panel[p * kNr + j] = p < pairs ? PairWord(col[2 * p], 2 * p + 1 < kc ? col[2 * p + 1] : 0.0f) : 0u;
    }
  }
#endif
}

// op(A) rows [i0, i0 + mc) × k [k0, k0 + kc) into 12-row panels. Row-major layout (op(A) = A, its
// k runs contiguous): word [r·kPairs + p] of a panel, pairs [pairs, PadPairs(pairs)) zero;
// pair-major (op(A) = Aᵀ): word [p·12 + r]. Rows past mc (to the panel's end) are zero.
void PackA(bool ta, const float* a, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc, uint32_t* out) {
  const int64_t pairs = (kc + 1) / 2, ppad = PadPairs(pairs);
  if (!ta) {
    for (int64_t ip = 0; ip < mc; ip += kMr) {
      uint32_t* panel = out + ip / kMr * kMr * kPairs;
      const int64_t rows = std::min<int64_t>(kMr, mc - ip);
      for (int64_t r = 0; r < kMr; ++r) {
        uint32_t* dst = panel + r * kPairs;
        if (r >= rows) {
          std::memset(dst, 0, static_cast<size_t>(ppad) * sizeof(uint32_t));
          continue;
        }
        const float* row = a + (i0 + ip + r) * lda + k0;
        if (ip + r + 2 < mc) PrefetchRun(row + 2 * lda, kc);
#if defined(__AVX512F__)
        for (int64_t p0 = 0; p0 < ppad; p0 += 16)  // past k the masked loads give zeros
          _mm512_storeu_si512(dst + p0, RowPairWords(row + 2 * p0, kc - 2 * p0));
#else
        for (int64_t p = 0; p < ppad; ++p)
          dst[p] = p < pairs ? PairWord(row[2 * p], 2 * p + 1 < kc ? row[2 * p + 1] : 0.0f) : 0u;
#endif
      }
    }
    return;
  }
  // op(A)(i, k) = a[k·lda + i]: rows 2p and 2p + 1 of a give the 12 words of pair p of every
  // panel, read along the rows.
  for (int64_t p = 0; p < pairs; ++p) {
    const float* even = a + (k0 + 2 * p) * lda + i0;
    const float* odd = 2 * p + 1 < kc ? even + lda : nullptr;
    for (int64_t ip = 0; ip < mc; ip += kMr)
      PackPairRow(even + ip, odd ? odd + ip : nullptr, lda, ip == 0 && 2 * p + 5 < kc, mc, mc - ip, kMr,
                  out + ip / kMr * kMr * kPairs + p * kMr);
  }
}

// C tile (rows × cols of at most 12 × 32) = alpha · acc + (load ? c_beta · C : 0).
inline void StoreTile(const float* acc, float* c, int64_t ldc, int rows, int cols, float alpha, float c_beta,
                      bool load) {
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) {
      const float v = alpha * acc[r * kNr + j];
      c[r * ldc + j] = load ? v + c_beta * c[r * ldc + j] : v;
    }
}

#if defined(__AVX512F__)
// acc += the pair products of a (16 lanes of one broadcast word) and b.
inline __m512 Dot(__m512 acc, __m512i a, __m512i b) {
#if defined(__AVX512BF16__)
  return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
#else  // the instruction's order: the odd (high) products, then the even ones
  const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  acc =
      _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(a, hi)), _mm512_castsi512_ps(_mm512_and_si512(b, hi)), acc);
  return _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)), _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)),
                         acc);
#endif
}

// A tile of kR (<= kMr) rows: a holds them at a[r·kPairs + p] (row-major op(A): any run of rows
// of a packed block) or a[p·kMr + r] (pair-major: the first kR rows of a panel). Each element's
// sum runs over the pairs in order whatever kR is.
template <bool kRowMajorA, int kR = kMr>
void MicroKernel(int64_t pairs, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int rows, int cols,
                 float alpha, float c_beta, bool load, const uint32_t* prefetch_b) {
  static_assert(kR <= kMr);
  // The tile's rows of C are asked for (to write) now and used after the k loop: rows of a big C
  // lie far apart (the LM head's logits, 128 KB) and miss every cache, and a store or load that
  // waits on them stalls the core. In moe-small bf16 training steps (2 threads, A B x 3) this took
  // a step from 3.11-3.51 s (median 3.23) to 3.06-3.14 s (median 3.07); the LM head's forward went
  // from 374 to 403 GFLOP/s.
  for (int r = 0; r < rows; ++r) {
    __builtin_prefetch(c + r * ldc, 1);
    __builtin_prefetch(c + r * ldc + kNr - 1, 1);
  }
  __m512 acc[kR][2];
#pragma GCC unroll 12
  for (int r = 0; r < kR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    if (prefetch_b != nullptr) {
      _mm_prefetch(reinterpret_cast<const char*>(prefetch_b + p * kNr), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(prefetch_b + p * kNr + 16), _MM_HINT_T1);
    }
    const __m512i b0 = _mm512_loadu_si512(b + p * kNr), b1 = _mm512_loadu_si512(b + p * kNr + 16);
#pragma GCC unroll 12
    for (int r = 0; r < kR; ++r) {
      const __m512i av = _mm512_set1_epi32(static_cast<int>(kRowMajorA ? a[r * kPairs + p] : a[p * kMr + r]));
      acc[r][0] = Dot(acc[r][0], av, b0);
      acc[r][1] = Dot(acc[r][1], av, b1);
    }
  }
  if (rows == kR && cols == kNr) {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(c_beta);
#pragma GCC unroll 12
    for (int r = 0; r < kR; ++r)
      for (int h = 0; h < 2; ++h) {
        float* cp = c + r * ldc + h * 16;
        __m512 v = _mm512_mul_ps(va, acc[r][h]);
        if (load) v = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cp), v);
        _mm512_storeu_ps(cp, v);
      }
    return;
  }
  alignas(64) float tile[kR * kNr];
  for (int r = 0; r < kR; ++r) {
    _mm512_store_ps(tile + r * kNr, acc[r][0]);
    _mm512_store_ps(tile + r * kNr + 16, acc[r][1]);
  }
  StoreTile(tile, c, ldc, rows, cols, alpha, c_beta, load);
}
#else
template <bool kRowMajorA, int kR = kMr>
void MicroKernel(int64_t pairs, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int rows, int cols,
                 float alpha, float c_beta, bool load, const uint32_t* /*prefetch_b*/) {
  float tile[kMr * kNr] = {};
  for (int64_t p = 0; p < pairs; ++p)
    for (int r = 0; r < kR; ++r) {
      const uint32_t aw = kRowMajorA ? a[r * kPairs + p] : a[p * kMr + r];
      for (int j = 0; j < kNr; ++j) {
        const uint32_t bw = b[p * kNr + j];
        float& t = tile[r * kNr + j];
        t = std::fma(Bf16ToF32(static_cast<uint16_t>(aw >> 16)), Bf16ToF32(static_cast<uint16_t>(bw >> 16)), t);
        t = std::fma(Bf16ToF32(static_cast<uint16_t>(aw)), Bf16ToF32(static_cast<uint16_t>(bw)), t);
      }
    }
  StoreTile(tile, c, ldc, rows, cols, alpha, c_beta, load);
}
#endif

// Rows [0, mc) of a packed block of op(A) (at a) times one panel of op(B) (bp) into C (at c), in
// tiles of 12, 8 or 4 rows: the rows of a last tile that would go past mc are multiplied too
// (zeros) and cost as much as real ones, so a few rows left over go to a smaller tile. Row-major
// blocks hold row i at i·kPairs, so a tile may start anywhere (16 rows: 8 + 8); pair-major ones
// tile each 12-row panel on its own. In an L1-resident microbenchmark the 8- and 4-row tiles run
// at the 12-row tile's rate (228, 208 against 229 GFLOP/s on one Zen 4 core).
template <bool kRowMajorA>
void Tiles(int64_t pairs, const uint32_t* a, int64_t mc, const uint32_t* bp, float* c, int64_t ldc, int cols,
           float alpha, float c_beta, bool load, const uint32_t* prefetch_b = nullptr) {
  for (int64_t ip = 0; ip < mc;) {
    const int64_t left = mc - ip;
    int tile = left > 8 ? kMr : left > 4 ? 8 : 4;
    if (kRowMajorA && left > 12 && left <= 16) tile = 8;
    const uint32_t* ap = kRowMajorA ? a + ip * kPairs : a + ip / kMr * kMr * kPairs;
    float* cp = c + ip * ldc;
    const int rows = static_cast<int>(std::min<int64_t>(tile, left));
    if (tile == kMr)
      MicroKernel<kRowMajorA, kMr>(pairs, ap, bp, cp, ldc, rows, cols, alpha, c_beta, load, prefetch_b);
    else if (tile == 8)
      MicroKernel<kRowMajorA, 8>(pairs, ap, bp, cp, ldc, rows, cols, alpha, c_beta, load, prefetch_b);
    else
      MicroKernel<kRowMajorA, 4>(pairs, ap, bp, cp, ldc, rows, cols, alpha, c_beta, load, prefetch_b);
    prefetch_b = nullptr;  // the first tile asks for the next panel; the others find it on their way
    ip += kRowMajorA || tile == kMr ? tile : kMr;
  }
}

#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__x86_64__) && defined(__linux__)
#define R1_AMX 1
#define R1_AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))

// The CPU has AMX-BF16 and AMX-TILE, the OS saves tile state (XCR0 bits 17 and 18) and grants it
// to this process (Linux asks for that once per process, arch_prctl ARCH_REQ_XCOMP_PERM).
bool DetectAmx() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(1, 0, &eax, &ebx, &ecx, &edx) == 0 || (ecx & (1u << 27)) == 0) return false;  // OSXSAVE
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  if ((edx & (1u << 22)) == 0 || (edx & (1u << 24)) == 0) return false;
  uint32_t xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0x60000u) != 0x60000u) return false;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

// Every tile 16 rows of 64 bytes: A 16 rows × 16 pairs, B 16 pairs × 16 columns, C 16 × 16 f32.
// The configuration is per thread; each thread loads it before its first tile instruction.
R1_AMX_TARGET void ConfigureTiles() {
  static thread_local bool configured = false;
  if (configured) return;
  struct alignas(64) {
    uint8_t palette = 1, start_row = 0, reserved[14] = {};
    uint16_t bytes_per_row[16] = {};
    uint8_t rows[16] = {};
  } config;
  for (int t = 0; t < 8; ++t) {
    config.bytes_per_row[t] = 64;
    config.rows[t] = kTileRows;
  }
  _tile_loadconfig(&config);
  configured = true;
}

// 16·kM rows × 32 columns of C (tiles 0..3: rows 0-15 | 16-31 × columns 0-15 | 16-31) = C (load)
// or 0, plus Σ over `steps` · 16 pairs: a row-major (row r's pair p at a[r·lda + p]), b one panel
// (pair p's 32 columns at b[p·32]). Tiles 4, 5 hold A's row tiles, 6 and 7 B's column tiles.
template <int kM>
R1_AMX_TARGET void AmxKernel(int64_t steps, const uint32_t* a, int64_t lda, const uint32_t* b, float* c, int64_t ldc,
                             bool load, const uint32_t* prefetch_b) {
  const int64_t sa = lda * 4, sb = kNr * 4, sc = ldc * 4;
  if (load) {
    _tile_loadd(0, c, sc);
    _tile_loadd(1, c + 16, sc);
    if constexpr (kM == 2) {
      _tile_loadd(2, c + kTileRows * ldc, sc);
      _tile_loadd(3, c + kTileRows * ldc + 16, sc);
    }
  } else {
    _tile_zero(0);
    _tile_zero(1);
    if constexpr (kM == 2) {
      _tile_zero(2);
      _tile_zero(3);
    }
  }
  for (int64_t s = 0; s < steps; ++s) {
    const uint32_t* bs = b + s * kTilePairs * kNr;
    if (prefetch_b != nullptr)  // the next panel into L2, a step's worth (32 lines) per step
      for (int64_t l = 0; l < kTilePairs * kNr; l += 16)
        _mm_prefetch(reinterpret_cast<const char*>(prefetch_b + s * kTilePairs * kNr + l), _MM_HINT_T1);
    _tile_loadd(6, bs, sb);
    _tile_loadd(7, bs + 16, sb);
    _tile_loadd(4, a + s * kTilePairs, sa);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if constexpr (kM == 2) {
      _tile_loadd(5, a + kTileRows * lda + s * kTilePairs, sa);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c, sc);
  _tile_stored(1, c + 16, sc);
  if constexpr (kM == 2) {
    _tile_stored(2, c + kTileRows * ldc, sc);
    _tile_stored(3, c + kTileRows * ldc + 16, sc);
  }
}

// Rows [0, mc) of a row-major block (row i at a + i·lda, ppad pairs, readable to the next multiple
// of 16 rows) times one panel into C (cols ≤ 32 columns), 32 rows at a time. Tiles that C does
// not fill go through a buffer; every element's sum is the same either way.
void AmxTiles(int64_t ppad, const uint32_t* a, int64_t lda, int64_t mc, const uint32_t* bp, float* c, int64_t ldc,
              int cols, float alpha, float c_beta, bool load, const uint32_t* prefetch_b = nullptr) {
  ConfigureTiles();
  const int64_t steps = ppad / kTilePairs;
  const bool direct = alpha == 1.0f && (!load || c_beta == 1.0f);  // the tiles start from C (or zero)
  for (int64_t ip = 0; ip < mc; ip += 2 * kTileRows) {
    const int rows = static_cast<int>(std::min<int64_t>(2 * kTileRows, mc - ip));
    const bool two = rows > kTileRows;
    const uint32_t* ap = a + ip * lda;
    float* cp = c + ip * ldc;
    if (direct && cols == kNr && rows == (two ? 2 : 1) * kTileRows) {
      if (two)
        AmxKernel<2>(steps, ap, lda, bp, cp, ldc, load, prefetch_b);
      else
        AmxKernel<1>(steps, ap, lda, bp, cp, ldc, load, prefetch_b);
      prefetch_b = nullptr;  // the first row block asks for the next panel
      continue;
    }
    alignas(64) float tile[2 * kTileRows * kNr];
    const bool tile_load = direct && load;
    if (tile_load)
      for (int r = 0; r < rows; ++r) std::memcpy(tile + r * kNr, cp + r * ldc, static_cast<size_t>(cols) * 4);
    if (two)
      AmxKernel<2>(steps, ap, lda, bp, tile, kNr, tile_load, prefetch_b);
    else
      AmxKernel<1>(steps, ap, lda, bp, tile, kNr, tile_load, prefetch_b);
    prefetch_b = nullptr;
    StoreTile(tile, cp, ldc, rows, cols, direct ? 1.0f : alpha, c_beta, !direct && load);
  }
}

// op(A) = aᵀ (op(A)(i, k) = a[k·lda + i]) rows [i0, i0 + mc) × k [k0, k0 + kc) into the row-major
// layout of PackA (row r's pair p at r·kPairs + p, PadPairs(pairs) pairs, rows to the next multiple
// of 16, past mc zero): 16 rows × 16 pairs at a time from 32 rows of a, by a 16 × 16 transpose of
// their pair words.
void PackATransposedRows(const float* a, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc, uint32_t* out) {
  const int64_t ppad = PadPairs((kc + 1) / 2);
  for (int64_t ir = 0; ir < mc; ir += kTileRows) {
    const __mmask16 m = FirstLanes(mc - ir);
    const float* col = a + k0 * lda + i0 + ir;
    for (int64_t p0 = 0; p0 < ppad; p0 += kTilePairs) {
      __m512i w[16];
      for (int q = 0; q < 16; ++q) {
        const int64_t k = 2 * (p0 + q);
        const __m512 even = k < kc ? _mm512_maskz_loadu_ps(m, col + k * lda) : _mm512_setzero_ps();
        const __m512 odd = k + 1 < kc ? _mm512_maskz_loadu_ps(m, col + (k + 1) * lda) : _mm512_setzero_ps();
        w[q] = PairWords(even, odd);
      }
      Transpose16(w);
      for (int r = 0; r < 16; ++r) _mm512_storeu_si512(out + (ir + r) * kPairs + p0, w[r]);
    }
  }
}
#endif

Bf16Engine DefaultBf16Engine() {
  const char* env = std::getenv("R1_AMX");
  if (env != nullptr && std::string_view(env) == "0") return Bf16Engine::kVector;
  return AmxAvailable() ? Bf16Engine::kAmx : Bf16Engine::kVector;
}

std::atomic<Bf16Engine> g_engine{DefaultBf16Engine()};

}  // namespace

bool AmxAvailable() {
#if defined(R1_AMX)
  static const bool available = DetectAmx();
  return available;
#else
  return false;
#endif
}

Bf16Engine CurrentBf16Engine() { return g_engine.load(std::memory_order_relaxed); }

const char* Bf16EngineName(Bf16Engine e) {
  if (e == Bf16Engine::kAmx) return "AMX";
  return Bf16DotInHardware() ? "AVX512_BF16" : "no AVX512_BF16 in this build: emulated, slower than f32";
}

ScopedBf16Engine::ScopedBf16Engine(Bf16Engine e) {
  R1_CHECK(e != Bf16Engine::kAmx || AmxAvailable()) << "AMX is not available on this machine";
  previous_ = g_engine.exchange(e);
}
ScopedBf16Engine::~ScopedBf16Engine() { g_engine.store(previous_); }

void SgemmBf16Serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a,
                     int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  const Bf16Part part{M, a, lda, c, ldc};
  SgemmBf16SerialSharedB(trans_a, trans_b, std::span(&part, 1), N, K, alpha, b, ldb, beta);
}

void SgemmBf16SerialSharedB(bool trans_a, bool trans_b, std::span<const Bf16Part> parts, int64_t N, int64_t K,
                            float alpha, const float* b, int64_t ldb, float beta) {
  if (N <= 0 || std::none_of(parts.begin(), parts.end(), [](const Bf16Part& q) { return q.M > 0; })) return;
  if (K <= 0 || alpha == 0.0f) {
    for (const Bf16Part& q : parts)
      for (int64_t i = 0; i < q.M; ++i)
        for (int64_t j = 0; j < N; ++j) q.c[i * q.ldc + j] = beta == 0.0f ? 0.0f : beta * q.c[i * q.ldc + j];
    return;
  }
  static thread_local Words a_pack, b_pack;
  a_pack.resize(static_cast<size_t>(kMc * kPairs));
  b_pack.resize(static_cast<size_t>((kNc + kNr - 1) / kNr * kNr * kPairs));
  [[maybe_unused]] const bool amx = CurrentBf16Engine() == Bf16Engine::kAmx;
  for (int64_t j0 = 0; j0 < N; j0 += kNc) {
    const int64_t nc = std::min(kNc, N - j0);
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
      const int64_t kc = std::min(kKc, K - k0), pairs = (kc + 1) / 2, ppad = PadPairs(pairs);
      const bool first = k0 == 0, load = !first || beta != 0.0f;
      const float c_beta = first ? beta : 1.0f;
      PackB(trans_b, b, ldb, k0, kc, j0, nc, b_pack.data());
      for (const Bf16Part& q : parts)  // each part's rows by the block of op(B) packed once
        for (int64_t i0 = 0; i0 < q.M; i0 += kMc) {
          const int64_t mc = std::min(kMc, q.M - i0);
#if defined(R1_AMX)
          if (amx) {  // both layouts of op(A) packed row-major, the tiles' layout
            if (trans_a)
              PackATransposedRows(q.a, q.lda, i0, mc, k0, kc, a_pack.data());
            else
              PackA(false, q.a, q.lda, i0, mc, k0, kc, a_pack.data());
            for (int64_t jp = 0; jp < nc; jp += kNr)
              AmxTiles(ppad, a_pack.data(), kPairs, mc, b_pack.data() + jp / kNr * ppad * kNr,
                       q.c + i0 * q.ldc + j0 + jp, q.ldc, static_cast<int>(std::min<int64_t>(kNr, nc - jp)), alpha,
                       c_beta, load);
            continue;
          }
#endif
          PackA(trans_a, q.a, q.lda, i0, mc, k0, kc, a_pack.data());
          for (int64_t jp = 0; jp < nc; jp += kNr) {
            const uint32_t* bp = b_pack.data() + jp / kNr * ppad * kNr;
            const int cols = static_cast<int>(std::min<int64_t>(kNr, nc - jp));
            float* cp = q.c + i0 * q.ldc + j0 + jp;
            if (trans_a)
              Tiles<false>(pairs, a_pack.data(), mc, bp, cp, q.ldc, cols, alpha, c_beta, load);
            else
              Tiles<true>(pairs, a_pack.data(), mc, bp, cp, q.ldc, cols, alpha, c_beta, load);
          }
        }
    }
  }
}

int64_t PackedBf16WeightWords(int64_t N, int64_t K) {
  // Every k block but the last holds kPairs pairs, the last its pairs padded to 16; each of its
  // panels is 32 columns wide.
  const int64_t blocks = (K + kKc - 1) / kKc, last = K - (blocks - 1) * kKc;
  return (N + kNr - 1) / kNr * kNr * ((blocks - 1) * kPairs + PadPairs((last + 1) / 2));
}

namespace {

// All of op(B) (depth k × cols columns, b row-major with leading dimension ldb) packed as
// SgemmBf16Serial packs it block by block: each k block's panels after the previous block's.
void PackWholeB(bool tb, const float* b, int64_t ldb, int64_t depth, int64_t cols, uint32_t* out) {
  const int64_t cols_pad = (cols + kNr - 1) / kNr * kNr;
  for (int64_t k0 = 0; k0 < depth; k0 += kKc)
    PackB(tb, b, ldb, k0, std::min(kKc, depth - k0), 0, cols, out + cols_pad * (k0 / 2));
}

}  // namespace

// op(B) = wᵀ: the panels of SgemmBf16Serial(false, true, ...).
void PackBf16Weight(const float* w, int64_t N, int64_t K, uint32_t* out) { PackWholeB(true, w, K, K, N, out); }

// op(B) = w (N rows of k, K columns): the panels of SgemmBf16Serial(false, false, ...).
void PackBf16WeightTransposed(const float* w, int64_t N, int64_t K, uint32_t* out) {
  PackWholeB(false, w, K, N, K, out);
}

int64_t PackedBf16RowsWords(int64_t T, int64_t K) {
  return (T + kRowsAlign - 1) / kRowsAlign * kRowsAlign * kPairs * ((K + kKc - 1) / kKc);
}

void PackBf16Rows(const float* x, int64_t T, int64_t ldx, int64_t K, uint32_t* out) {
  const int64_t t_pad = (T + kRowsAlign - 1) / kRowsAlign * kRowsAlign;
  for (int64_t k0 = 0; k0 < K; k0 += kKc)
    PackA(/*ta=*/false, x, ldx, 0, T, k0, std::min(kKc, K - k0), out + t_pad * kPairs * (k0 / kKc));
}

void PackedBf16Product(const uint32_t* x_packed, int64_t T, int64_t K, const uint32_t* w_packed, int64_t N,
                       int64_t n_begin, int64_t n_end, float* out, int64_t ldo, bool accumulate) {
  R1_CHECK(n_begin % kNr == 0 && n_begin >= 0 && n_end <= N) << n_begin << ".." << n_end << " of " << N;
  if (T <= 0 || n_begin >= n_end) return;
  const int64_t n_pad = (N + kNr - 1) / kNr * kNr, t_pad = (T + kRowsAlign - 1) / kRowsAlign * kRowsAlign;
  if (K <= 0) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = n_begin; n < n_end; ++n) {
        float& o = out[t * ldo + n - n_begin];
        o = accumulate ? o : 0.0f;
      }
    return;
  }
  // The k blocks, panels and tiles of SgemmBf16Serial(false, true, ...) with alpha 1 and beta 0
  // or 1: every element is the same sum in the same order.
  [[maybe_unused]] const bool amx = CurrentBf16Engine() == Bf16Engine::kAmx;
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t pairs = (std::min(kKc, K - k0) + 1) / 2, ppad = PadPairs(pairs);
    const bool first = k0 == 0, load = !first || accumulate;
    const uint32_t* wb = w_packed + n_pad * (k0 / 2);
    const uint32_t* xb = x_packed + t_pad * kPairs * (k0 / kKc);
    for (int64_t jp = n_begin; jp < n_end; jp += kNr) {
      const uint32_t* bp = wb + jp / kNr * ppad * kNr;
      const int cols = static_cast<int>(std::min<int64_t>(kNr, n_end - jp));
#if defined(R1_AMX)
      if (amx) {
        AmxTiles(ppad, xb, kPairs, T, bp, out + (jp - n_begin), ldo, cols, 1.0f, 1.0f, load, bp + ppad * kNr);
        continue;
      }
#endif
      // The first tile over a panel asks for the next panel (16 KB at K = 256) into L2 as it goes. A
      // rollout's weights are read once per decode step from the last-level cache or memory, and the
      // hardware prefetcher alone left the kernel waiting on them: T = 16 rows through 100 expert
      // matrices of 256 x 256 (13 MB) ran at 90-125 GFLOP/s on one Zen 4 core without this and at
      // 145-199 with it (T = 32: 124-149 -> 171-180; 200-216 with one matrix hot in L1).
      Tiles<true>(pairs, xb, T, bp, out + (jp - n_begin), ldo, cols, 1.0f, 1.0f, load, bp + ppad * kNr);
    }
  }
}

bool Bf16DotInHardware() {
#if defined(__AVX512BF16__)
  return true;
#else
  return false;
#endif
}

}  // namespace r1::kernels
