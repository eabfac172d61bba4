#include "kernels/attention.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "core/memory.h"
#include "core/threads.h"
#include "kernels/activation.h"
#include "kernels/matmul.h"
#include "kernels/row_sum.h"
#include "kernels/simd.h"

namespace r1::kernels {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kRowBlock = 64;  // query rows per block; a block's GEMMs span only its visible keys

// Where each query row's visible keys lie, worked out once per call and shared by all heads:
// row t sees keys in [lo[t], hi[t]) only (hi <= lo: none), and all of them unless holes[t].
// Causal masks with packed documents are contiguous spans; the span of a block of rows bounds
// the columns its GEMMs touch, which skips the invisible upper triangle block by block.
struct VisibleSpans {
  std::vector<int64_t> lo, hi;
  std::vector<uint8_t> holes;

  VisibleSpans(const AttentionMask& mask, int64_t T, int64_t S)
      : lo(static_cast<size_t>(T), S), hi(static_cast<size_t>(T), 0), holes(static_cast<size_t>(T), 0) {
    for (int64_t t = 0; t < T; ++t) {
      int64_t n = 0;
      for (int64_t s = 0; s < S; ++s)
        if (mask.Visible(t, s)) {
          lo[t] = std::min(lo[t], s);
          hi[t] = s + 1;
          ++n;
        }
      holes[t] = n > 0 && n != hi[t] - lo[t];
    }
  }
  // Columns [c0, c1) holding every visible key of rows [t0, t1); c1 <= c0 when there are none.
  std::pair<int64_t, int64_t> Columns(int64_t t0, int64_t t1) const {
    int64_t c0 = std::numeric_limits<int64_t>::max(), c1 = 0;
    for (int64_t t = t0; t < t1; ++t)
      if (hi[t] > lo[t]) {
        c0 = std::min(c0, lo[t]);
        c1 = std::max(c1, hi[t]);
      }
    return {c1 > 0 ? c0 : 0, c1};
  }
};

// Row t of scores p (its S entries, scores valid in the block's columns) becomes its softmax over
// the visible keys, exactly 0 everywhere else.
void VisibleSoftmaxRow(float* p, int64_t t, int64_t S, const VisibleSpans& sp, const AttentionMask& mask) {
  const int64_t lo = sp.lo[t], hi = sp.hi[t];
  if (hi <= lo) {
    std::fill(p, p + S, 0.0f);
    return;
  }
  if (sp.holes[t])
    for (int64_t s = lo; s < hi; ++s)
      if (!mask.Visible(t, s)) p[s] = kNegInf;
  std::fill(p, p + lo, 0.0f);
  std::fill(p + hi, p + S, 0.0f);
  Softmax(p + lo, 1, hi - lo);
}

#if defined(__AVX512F__)
// ---- Training attention on 16-lane FMAs (head widths that are multiples of 16) ----------------
//
// The BLAS path above costs a call per product per 64-row block, each over the block's widest
// span. The segments of a GRPO update are ~60 queries over ~75 keys with heads of 48/32, where
// those calls' fixed costs outweigh their work. Here every product runs over the span of 4 query
// rows at a time (the causal triangle skipped 4 rows at a time) in register tiles: scores and
// dP as rows × keys transposed (16 keys a vector), the rest as weighted sums of 16-wide rows.

// x, held in a register: GCC otherwise folds a vector's load into each FMA that reads it, one load
// per row of the tile instead of one, and the tiles ran at the loads' rate (~60 % of the FMAs').
inline __m512 KeepInRegister(__m512 x) {
  __asm__("" : "+v"(x));
  return x;
}

// One head's rows transposed: dst[d·ld + s] = src[s·lds + d] for s < S and d < D (D a multiple
// of 16), zeros in columns [S, ld) up to the next multiple of 16.
void TransposeHead(const float* src, int64_t lds, int64_t S, int64_t D, float* dst, int64_t ld) {
  for (int64_t s0 = 0; s0 < S; s0 += 16) {
    const int64_t ns = std::min<int64_t>(16, S - s0);
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
      __m512i w[16];
      for (int64_t i = 0; i < 16; ++i)
        w[i] = i < ns ? _mm512_loadu_si512(src + (s0 + i) * lds + d0) : _mm512_setzero_si512();
      Transpose16(w);
      for (int64_t i = 0; i < 16; ++i) _mm512_storeu_si512(dst + (d0 + i) * ld + s0, w[i]);
    }
  }
}

// out[r·ldo + i] = alpha · Σ_{j<n} w[r·rs + j·js] · m[j·ldm + i] for rows r < NR and i < 16·NV,
// the last vector's lanes stored where `last` is set: NR weighted sums of n rows of m. With js = 1
// and m a head's keys (values) transposed, the scores (dP) of NR query rows; otherwise P·V, dS·K,
// and with w read down a column, Pᵀ·dO and dSᵀ·Q.
template <int NR, int NV>
void WeightedRows(const float* w, int64_t rs, int64_t js, int64_t n, const float* m, int64_t ldm, float alpha,
                  float* out, int64_t ldo, __mmask16 last) {
  __m512 acc[NR][NV];
  for (int r = 0; r < NR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    __m512 x[NV];
    for (int v = 0; v < NV; ++v) x[v] = KeepInRegister(_mm512_loadu_ps(m + j * ldm + 16 * v));
    for (int r = 0; r < NR; ++r) {
      const __m512 wr = _mm512_set1_ps(w[r * rs + j * js]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(wr, x[v], acc[r][v]);
    }
  }
  const __m512 al = _mm512_set1_ps(alpha);
  for (int r = 0; r < NR; ++r)
    for (int v = 0; v < NV; ++v)
      _mm512_mask_storeu_ps(out + r * ldo + 16 * v, v + 1 < NV ? __mmask16(0xffff) : last,
                            _mm512_mul_ps(al, acc[r][v]));
}

using WeightedTile = void (*)(const float*, int64_t, int64_t, int64_t, const float*, int64_t, float, float*, int64_t,
                              __mmask16);
template <int NR>
constexpr std::array<WeightedTile, 4> kWeightedTilesOf = {&WeightedRows<NR, 1>, &WeightedRows<NR, 2>,
                                                          &WeightedRows<NR, 3>, &WeightedRows<NR, 4>};
// [rows − 1][vectors − 1]
constexpr std::array<std::array<WeightedTile, 4>, 4> kWeightedTiles = {kWeightedTilesOf<1>, kWeightedTilesOf<2>,
                                                                       kWeightedTilesOf<3>, kWeightedTilesOf<4>};

// WeightedRows for nr <= 4 rows over `width` columns, 64 at a time, the last vector masked.
void WeightedRowsAny(int64_t nr, const float* w, int64_t rs, int64_t js, int64_t n, const float* m, int64_t ldm,
                     int64_t width, float alpha, float* out, int64_t ldo) {
  const std::array<WeightedTile, 4>& tiles = kWeightedTiles[nr - 1];
  int64_t i = 0;
  for (; i + 64 <= width; i += 64) tiles[3](w, rs, js, n, m + i, ldm, alpha, out + i, ldo, 0xffff);
  const int64_t rest = width - i;
  if (rest > 0)
    tiles[(rest - 1) / 16](w, rs, js, n, m + i, ldm, alpha, out + i, ldo, FirstLanes(rest - 16 * ((rest - 1) / 16)));
}

// Scores of nr <= 4 rows of a (lda apart, D wide) against the D rows of bt (ldb apart, n columns):
// c[r·ldc + j] = alpha · Σ_d a[r·lda + d] · bt[d·ldb + j].
void RowsByTransposedAny(int64_t nr, const float* a, int64_t lda, const float* bt, int64_t ldb, int64_t D, int64_t n,
                         float alpha, float* c, int64_t ldc) {
  WeightedRowsAny(nr, a, lda, 1, D, bt, ldb, n, alpha, c, ldc);
}

constexpr int64_t kTileRows = 4;  // query rows (or keys) per tile

// Columns [c0, c1) holding every visible key of rows [t0, t1) (c1 <= c0: none), c0 rounded down
// to a multiple of 16 in *c0_16 (the transposed operands' vectors start there).
std::pair<int64_t, int64_t> TileColumns(const VisibleSpans& sp, int64_t t0, int64_t t1, int64_t* c0_16) {
  const auto [c0, c1] = sp.Columns(t0, t1);
  *c0_16 = c0 / 16 * 16;
  return {c0, c1};
}

// Rows [r0, r1) holding every query that sees some key of [s0, s1): the keys' tile, for the
// gradients of keys and values (r1 <= r0: none).
std::pair<int64_t, int64_t> KeyRows(const VisibleSpans& sp, int64_t T, int64_t s0, int64_t s1) {
  int64_t r0 = T, r1 = 0;
  for (int64_t t = 0; t < T; ++t)
    if (sp.lo[t] < s1 && sp.hi[t] > s0 && sp.hi[t] > sp.lo[t]) {
      r0 = std::min(r0, t);
      r1 = t + 1;
    }
  return {r0, r1};
}

void AttentionNaiveAvx512(const float* q, const float* k, const float* v, int64_t T, int64_t S, int64_t H, int64_t Dk,
                          int64_t Dv, float scale, const AttentionMask& mask, const VisibleSpans& sp, float* out,
                          float* probs) {
  const int64_t ldq = H * Dk, ldv = H * Dv, ldt = (S + 15) / 16 * 16;
  ParallelFor(H, H > 1, [&](int64_t h) {
    thread_local ScratchVector<float> kt, local;
    kt.resize(static_cast<size_t>(Dk * ldt));
    TransposeHead(k + h * Dk, ldq, S, Dk, kt.data(), ldt);
    if (!probs) local.resize(static_cast<size_t>(kTileRows * S));
    for (int64_t t0 = 0; t0 < T; t0 += kTileRows) {
      const int64_t nr = std::min(kTileRows, T - t0);
      float* p = probs ? probs + (h * T + t0) * S : local.data();  // rows t0.. of this head
      int64_t c16 = 0;
      const auto [c0, c1] = TileColumns(sp, t0, t0 + nr, &c16);
      if (c1 > c0)
        RowsByTransposedAny(nr, q + t0 * ldq + h * Dk, ldq, kt.data() + c16, ldt, Dk, c1 - c16, scale, p + c16, S);
      for (int64_t r = 0; r < nr; ++r) VisibleSoftmaxRow(p + r * S, t0 + r, S, sp, mask);
      float* o = out + t0 * ldv + h * Dv;
      if (c1 > c0)
        WeightedRowsAny(nr, p + c0, S, 1, c1 - c0, v + c0 * ldv + h * Dv, ldv, Dv, 1.0f, o, ldv);
      else
        for (int64_t r = 0; r < nr; ++r) std::fill_n(o + r * ldv, Dv, 0.0f);
    }
  });
}

void AttentionNaiveBackwardAvx512(const float* q, const float* k, const float* v, const float* probs, const float* dout,
                                  int64_t T, int64_t S, int64_t H, int64_t Dk, int64_t Dv, float scale,
                                  const VisibleSpans& sp, float* dq, float* dk, float* dv) {
  const int64_t ldk = H * Dk, ldv = H * Dv, ldt = (S + 15) / 16 * 16;
  ParallelFor(H, H > 1, [&](int64_t h) {
    thread_local ScratchVector<float> vt, ds;
    vt.resize(static_cast<size_t>(Dv * ldt));
    ds.resize(static_cast<size_t>(T * S));
    TransposeHead(v + h * Dv, ldv, S, Dv, vt.data(), ldt);
    const float* ph = probs + h * T * S;
    // Per tile of query rows: dP = dout·vᵀ over the tile's columns, dS = P ⊙ (dP − rowsum(dP ⊙ P))
    // (zero outside them: the key tiles below read whole columns), dq = scale·dS·k.
    for (int64_t t0 = 0; t0 < T; t0 += kTileRows) {
      const int64_t nr = std::min(kTileRows, T - t0);
      int64_t c16 = 0;
      const auto [c0, c1] = TileColumns(sp, t0, t0 + nr, &c16);
      float* dqt = dq + t0 * ldk + h * Dk;
      if (c1 <= c0) {  // no visible keys: no gradient from these rows
        for (int64_t r = 0; r < nr; ++r) {
          std::fill_n(dqt + r * ldk, Dk, 0.0f);
          std::fill_n(ds.data() + (t0 + r) * S, S, 0.0f);
        }
        continue;
      }
      float* dst = ds.data() + t0 * S;
      RowsByTransposedAny(nr, dout + t0 * ldv + h * Dv, ldv, vt.data() + c16, ldt, Dv, c1 - c16, 1.0f, dst + c16, S);
      for (int64_t r = 0; r < nr; ++r) {
        const float* pr = ph + (t0 + r) * S;
        float* dr = dst + r * S;
        const int64_t lo = sp.lo[t0 + r], n = sp.hi[t0 + r] - lo;
        // rowsum(dP ⊙ P) over the row's visible span, in double in row_sum's fixed order.
        const double dot = n > 0 ? row_sum::RowSum(n,
                                                   [&](int64_t c, int64_t m, __m512d acc) {
                                                     return _mm512_fmadd_pd(row_sum::Widen(dr + lo + c, m),
                                                                            row_sum::Widen(pr + lo + c, m), acc);
                                                   })
                                 : 0.0;
        const float d = static_cast<float>(dot);
        std::fill(dr, dr + c0, 0.0f);
        for (int64_t s = c0; s < c1; ++s) dr[s] = pr[s] * (dr[s] - d);
        std::fill(dr + c1, dr + S, 0.0f);
      }
      WeightedRowsAny(nr, dst + c0, S, 1, c1 - c0, k + c0 * ldk + h * Dk, ldk, Dk, scale, dqt, ldk);
    }
    // Per tile of keys: dk = scale·dSᵀ·q and dv = Pᵀ·dout over the rows that see them.
    for (int64_t s0 = 0; s0 < S; s0 += kTileRows) {
      const int64_t ns = std::min(kTileRows, S - s0);
      const auto [r0, r1] = KeyRows(sp, T, s0, s0 + ns);
      float* dkt = dk + s0 * ldk + h * Dk;
      float* dvt = dv + s0 * ldv + h * Dv;
      if (r1 <= r0) {
        for (int64_t i = 0; i < ns; ++i) {
          std::fill_n(dkt + i * ldk, Dk, 0.0f);
          std::fill_n(dvt + i * ldv, Dv, 0.0f);
        }
        continue;
      }
      WeightedRowsAny(ns, ds.data() + r0 * S + s0, 1, S, r1 - r0, q + r0 * ldk + h * Dk, ldk, Dk, scale, dkt, ldk);
      WeightedRowsAny(ns, ph + r0 * S + s0, 1, S, r1 - r0, dout + r0 * ldv + h * Dv, ldv, Dv, 1.0f, dvt, ldv);
    }
  });
}
#endif

}  // namespace

void AttentionNaive(const float* q, const float* k, const float* v, int64_t T, int64_t S,
                    int64_t H, int64_t Dk, int64_t Dv, float scale, const AttentionMask& mask,
                    float* out, float* probs) {
  const VisibleSpans sp(mask, T, S);
#if defined(__AVX512F__)
  if (Dk % 16 == 0 && Dv % 16 == 0) return AttentionNaiveAvx512(q, k, v, T, S, H, Dk, Dv, scale, mask, sp, out, probs);
#endif
  const int ldq = static_cast<int>(H * Dk), ldv = static_cast<int>(H * Dv), iS = static_cast<int>(S);
  // Heads in parallel, each on one thread (OpenBLAS runs single-threaded inside the region); a
  // head's result does not depend on the thread count.
  ParallelFor(H, H > 1, [&](int64_t h) {
    thread_local std::vector<float> local;  // this thread's softmax rows when probs are not kept
    if (!probs) local.resize(static_cast<size_t>(std::min(T, kRowBlock) * S));
    for (int64_t t0 = 0; t0 < T; t0 += kRowBlock) {
        const int64_t t1 = std::min(T, t0 + kRowBlock);
        const int tb = static_cast<int>(t1 - t0);
        float* p = probs ? probs + (h * T + t0) * S : local.data();  // rows t0..t1 of this head
        const auto [c0, c1] = sp.Columns(t0, t1);
        const int nc = static_cast<int>(c1 - c0);
        // p[:, c0:c1] = scale · q_h[t0:t1] · k_h[c0:c1]ᵀ; rows of one head are H·Dk apart.
        if (nc > 0)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tb, nc, static_cast<int>(Dk), scale,
                      q + t0 * ldq + h * Dk, ldq, k + c0 * ldq + h * Dk, ldq, 0.0f, p + c0, iS);
        for (int64_t t = t0; t < t1; ++t) VisibleSoftmaxRow(p + (t - t0) * S, t, S, sp, mask);
        // out_h[t0:t1] = p[:, c0:c1] · v_h[c0:c1]
        float* o = out + t0 * ldv + h * Dv;
        if (nc > 0)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tb, static_cast<int>(Dv), nc, 1.0f, p + c0, iS,
                      v + c0 * ldv + h * Dv, ldv, 0.0f, o, ldv);
        else
          for (int64_t t = 0; t < tb; ++t) std::fill_n(o + t * ldv, Dv, 0.0f);
    }
  });
}

void AttentionNaiveBackward(const float* q, const float* k, const float* v, const float* probs, const float* dout,
                            int64_t T, int64_t S, int64_t H, int64_t Dk, int64_t Dv, float scale,
                            const AttentionMask& mask, float* dq, float* dk, float* dv) {
  const VisibleSpans sp(mask, T, S);
#if defined(__AVX512F__)
  if (Dk % 16 == 0 && Dv % 16 == 0)
    return AttentionNaiveBackwardAvx512(q, k, v, probs, dout, T, S, H, Dk, Dv, scale, sp, dq, dk, dv);
#endif
  const int ldk = static_cast<int>(H * Dk), ldv = static_cast<int>(H * Dv), iS = static_cast<int>(S);
  for (int64_t s = 0; s < S; ++s) {
    std::fill_n(dk + s * ldk, H * Dk, 0.0f);
    std::fill_n(dv + s * ldv, H * Dv, 0.0f);
  }
  ParallelFor(H, H > 1, [&](int64_t h) {
    thread_local std::vector<float> dp;  // this thread's dP rows
    dp.resize(static_cast<size_t>(std::min(T, kRowBlock) * S));
    for (int64_t t0 = 0; t0 < T; t0 += kRowBlock) {
        const int64_t t1 = std::min(T, t0 + kRowBlock);
        const int tb = static_cast<int>(t1 - t0);
        const auto [c0, c1] = sp.Columns(t0, t1);
        float* dqb = dq + t0 * ldk + h * Dk;
        if (c1 <= c0) {  // no visible keys: no gradient from these rows
          for (int64_t t = 0; t < tb; ++t) std::fill_n(dqb + t * ldk, Dk, 0.0f);
          continue;
        }
        const int nc = static_cast<int>(c1 - c0);
        const float* p = probs + (h * T + t0) * S + c0;  // (tb, nc), row stride S
        const float* dob = dout + t0 * ldv + h * Dv;
        // dP (tb, nc) = dout_h[t0:t1] · v_h[c0:c1]ᵀ
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tb, nc, static_cast<int>(Dv), 1.0f, dob, ldv,
                    v + c0 * ldv + h * Dv, ldv, 0.0f, dp.data(), nc);
        // dv_h[c0:c1] += P[t0:t1, c0:c1]ᵀ · dout_h[t0:t1]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nc, static_cast<int>(Dv), tb, 1.0f, p, iS, dob, ldv,
                    1.0f, dv + c0 * ldv + h * Dv, ldv);
        // dS = P ⊙ (dP − rowsum(dP ⊙ P)), in place in dp
        for (int64_t t = 0; t < tb; ++t) {
          const float* pr = p + t * S;
          float* dr = dp.data() + t * nc;
        // rowsum(dP ⊙ P) in double, in row_sum's fixed order (a plain loop was one serial chain
        // of adds, ~20 µs a 60-row segment of 4 heads).
#if defined(__AVX512F__)
          const double dot = row_sum::RowSum(nc, [&](int64_t c, int64_t n, __m512d acc) {
            return _mm512_fmadd_pd(row_sum::Widen(dr + c, n), row_sum::Widen(pr + c, n), acc);
          });
#else
          const double dot = row_sum::RowSum(
              nc, [&](int64_t c, double acc) { return std::fma(static_cast<double>(dr[c]), pr[c], acc); });
#endif
          const float d = static_cast<float>(dot);
          for (int64_t s = 0; s < nc; ++s) dr[s] = pr[s] * (dr[s] - d);
        }
        // dq_h[t0:t1] = scale · dS · k_h[c0:c1];  dk_h[c0:c1] += scale · dSᵀ · q_h[t0:t1]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tb, static_cast<int>(Dk), nc, scale, dp.data(), nc,
                    k + c0 * ldk + h * Dk, ldk, 0.0f, dqb, ldk);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nc, static_cast<int>(Dk), tb, scale, dp.data(), nc,
                    q + t0 * ldk + h * Dk, ldk, 1.0f, dk + c0 * ldk + h * Dk, ldk);
    }
  });
}

namespace {

#if defined(__AVX512F__)
// Lane i of the result = the sum of v[i]'s 16 lanes.
inline __m512 SumLanes16(const __m512 v[16]) {
  __m512 a[8], b[4];
  for (int i = 0; i < 8; ++i)  // per 128-bit lane: v[2i] and v[2i+1] down to 2 partial sums each
    a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i)  // per 128-bit lane: one partial sum of each of v[4i..4i+3]
    b[i] = _mm512_add_ps(_mm512_shuffle_ps(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // Add the four 128-bit lanes: b[i]'s totals end in lane i.
  const __m512 u01 = _mm512_add_ps(_mm512_shuffle_f32x4(b[0], b[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(b[0], b[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 u23 = _mm512_add_ps(_mm512_shuffle_f32x4(b[2], b[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(b[2], b[3], _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(u01, u23, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(u01, u23, _MM_SHUFFLE(3, 1, 3, 1)));
}

// One head's scores p[s] = scale · (<q, c[s]> + <qp, kpe[s]>) for s in [0, S), 16 keys at a time.
// kR, kDr: R/16 and Dr/16 when known at compile time (the query then stays in registers), else 0.
template <int kR, int kDr>
void LatentScores(const float* q, const float* qp, const float* c, const float* kpe, int64_t S, int64_t R, int64_t Dr,
                  float scale, float* p) {
  constexpr int kQ = kR > 0 ? kR + kDr : 1;
  __m512 qv[kQ];
  if constexpr (kR > 0) {
    for (int j = 0; j < kR; ++j) qv[j] = _mm512_loadu_ps(q + 16 * j);
    for (int j = 0; j < kDr; ++j) qv[kR + j] = _mm512_loadu_ps(qp + 16 * j);
  }
  for (int64_t s0 = 0; s0 < S; s0 += 16) {
    const int n = static_cast<int>(std::min<int64_t>(16, S - s0));
    __m512 acc[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) {
      acc[i] = _mm512_setzero_ps();
      if (i >= n) continue;
      const float* cs = c + (s0 + i) * R;
      const float* ks = kpe + (s0 + i) * Dr;
      if constexpr (kR > 0) {
#pragma GCC unroll 8
        for (int j = 0; j < kR; ++j) acc[i] = _mm512_fmadd_ps(qv[j], _mm512_loadu_ps(cs + 16 * j), acc[i]);
#pragma GCC unroll 8
        for (int j = 0; j < kDr; ++j) acc[i] = _mm512_fmadd_ps(qv[kR + j], _mm512_loadu_ps(ks + 16 * j), acc[i]);
      } else {
        for (int64_t j = 0; j < R; j += 16)
          acc[i] = _mm512_fmadd_ps(_mm512_loadu_ps(q + j), _mm512_loadu_ps(cs + j), acc[i]);
        for (int64_t j = 0; j < Dr; j += 16)
          acc[i] = _mm512_fmadd_ps(_mm512_loadu_ps(qp + j), _mm512_loadu_ps(ks + j), acc[i]);
      }
    }
    _mm512_mask_storeu_ps(p + s0, static_cast<__mmask16>((1u << n) - 1u),
                          _mm512_mul_ps(_mm512_set1_ps(scale), SumLanes16(acc)));
  }
}

// AttentionLatent for R and Dr multiples of 16: each query row's scores key by key (16-lane
// products, every head against the key's row while it is in L1), the row's softmax, then
// o_lat = p · c with the outputs of 4 heads × 64 latent columns held in 16 registers while the
// keys stream by. A decode step's call (T = 1, a few dozen keys) was three small BLAS products
// around the softmax, each with its own packing and dispatch.
void AttentionLatentAvx512(const float* q_lat, const float* q_pe, const float* c, const float* kpe, int64_t T,
                           int64_t S, int64_t H, int64_t R, int64_t Dr, float scale, const AttentionMask& mask,
                           float* o_lat) {
  ScratchVector<float> p(static_cast<size_t>(H * S));  // one query row's (H, S) scores, then weights
  for (int64_t t = 0; t < T; ++t) {
    const float* qt = q_lat + t * H * R;
    const float* pt = q_pe + t * H * Dr;
    // Blocks of 16 keys: each key's 16-lane partial products for one head, then the 16 sums at once.
    for (int64_t h = 0; h < H; ++h) {
      float* ph = p.data() + h * S;
      if (R == 64 && Dr == 16)  // the widths of the GRPO benchmark's model: the query in registers
        LatentScores<4, 1>(qt + h * R, pt + h * Dr, c, kpe, S, R, Dr, scale, ph);
      else
        LatentScores<0, 0>(qt + h * R, pt + h * Dr, c, kpe, S, R, Dr, scale, ph);
    }
    if (mask.k_pos == nullptr && mask.q_doc == nullptr) {  // keys 0..S-1: the ones after the query are hidden
      for (int64_t s = std::max<int64_t>(0, mask.q_pos[t] + 1); s < S; ++s)
        for (int64_t h = 0; h < H; ++h) p[h * S + s] = kNegInf;
    } else {
      for (int64_t s = 0; s < S; ++s)
        if (!mask.Visible(t, s))
          for (int64_t h = 0; h < H; ++h) p[h * S + s] = kNegInf;
    }
    Softmax(p.data(), H, S);
    float* ot = o_lat + t * H * R;
    for (int64_t h0 = 0; h0 < H; h0 += 4) {
      const int64_t hb = std::min<int64_t>(4, H - h0);
      for (int64_t r0 = 0; r0 < R; r0 += 64) {
        const int64_t m = std::min<int64_t>(4, (R - r0) / 16);
        if (hb == 4 && m == 4) {
          __m512 acc[4][4];
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
            for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_setzero_ps();
          for (int64_t s = 0; s < S; ++s) {
            const float* cs = c + s * R + r0;
            const __m512 c0 = KeepInRegister(_mm512_loadu_ps(cs)), c1 = KeepInRegister(_mm512_loadu_ps(cs + 16)),
                         c2 = KeepInRegister(_mm512_loadu_ps(cs + 32)), c3 = KeepInRegister(_mm512_loadu_ps(cs + 48));
#pragma GCC unroll 4
            for (int i = 0; i < 4; ++i) {
              const __m512 w = _mm512_set1_ps(p[(h0 + i) * S + s]);
              acc[i][0] = _mm512_fmadd_ps(w, c0, acc[i][0]);
              acc[i][1] = _mm512_fmadd_ps(w, c1, acc[i][1]);
              acc[i][2] = _mm512_fmadd_ps(w, c2, acc[i][2]);
              acc[i][3] = _mm512_fmadd_ps(w, c3, acc[i][3]);
            }
          }
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
            for (int v = 0; v < 4; ++v) _mm512_storeu_ps(ot + (h0 + i) * R + r0 + 16 * v, acc[i][v]);
          continue;
        }
        for (int64_t i = 0; i < hb; ++i)  // a last block of fewer heads or columns
          for (int64_t v = 0; v < m; ++v) {
            __m512 acc = _mm512_setzero_ps();
            for (int64_t s = 0; s < S; ++s)
              acc = _mm512_fmadd_ps(_mm512_set1_ps(p[(h0 + i) * S + s]), _mm512_loadu_ps(c + s * R + r0 + 16 * v), acc);
            _mm512_storeu_ps(ot + (h0 + i) * R + r0 + 16 * v, acc);
          }
      }
    }
  }
}
#endif

}  // namespace

void AttentionLatent(const float* q_lat, const float* q_pe, const float* c, const float* kpe,
                     int64_t T, int64_t S, int64_t H, int64_t R, int64_t Dr, float scale,
                     const AttentionMask& mask, float* o_lat) {
#if defined(__AVX512F__)
  if (R % 16 == 0 && Dr % 16 == 0) {
    AttentionLatentAvx512(q_lat, q_pe, c, kpe, T, S, H, R, Dr, scale, mask, o_lat);
    return;
  }
#endif
  // All T·H query rows share the one key/value head: scores (T·H, S) in two GEMMs.
  const int TH = static_cast<int>(T * H), iS = static_cast<int>(S);
  ScratchVector<float> p(static_cast<size_t>(T * H * S));  // assigned whole by the first GEMM
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TH, iS, static_cast<int>(R), scale, q_lat,
              static_cast<int>(R), c, static_cast<int>(R), 0.0f, p.data(), iS);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TH, iS, static_cast<int>(Dr), scale, q_pe,
              static_cast<int>(Dr), kpe, static_cast<int>(Dr), 1.0f, p.data(), iS);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t s = 0; s < S; ++s)
      if (!mask.Visible(t, s))
        for (int64_t h = 0; h < H; ++h) p[(t * H + h) * S + s] = kNegInf;
  Softmax(p.data(), T * H, S);
  // o_lat (T·H, R) = p (T·H, S) · c (S, R)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, TH, static_cast<int>(R), iS, 1.0f,
              p.data(), iS, c, static_cast<int>(R), 0.0f, o_lat, static_cast<int>(R));
}

}  // namespace r1::kernels


namespace r1::kernels {

void MlaAbsorbQuery(const float* q, int64_t token_stride, int64_t head_stride,
                    const TensorView& kv_b_proj, int64_t T, int64_t H, int64_t Dn, int64_t Dv,
                    float* q_lat) {
  const int64_t R = kv_b_proj.cols();
  // Per head: W_UK[h] widened to f32 once, then applied to every token's query.
  ParallelFor(H, H * T > 1, [&](int64_t h) {
    thread_local std::vector<float> wuk;  // W_UK[h] widened, when not f32
    const int64_t row0 = h * (Dn + Dv);
    const float* wh = kv_b_proj.dtype == DType::kF32 ? kv_b_proj.f32() + row0 * R : nullptr;
    if (!wh) {
      wuk.resize(static_cast<size_t>(Dn * R));
      for (int64_t r = 0; r < Dn; ++r) kv_b_proj.RowToF32(row0 + r, wuk.data() + r * R);
      wh = wuk.data();
    }
    for (int64_t t = 0; t < T; ++t) {
      const float* qn = q + t * token_stride + h * head_stride;
      float* out = q_lat + (t * H + h) * R;
#if defined(__AVX512F__)
      // 64 columns at a time in four registers, one fused multiply-add a column per r, in r order:
      // the scalar loop's operations (compiled to the same FMAs), whose out lived in memory, a
      // store and a reload per r on the critical path.
      for (int64_t c0 = 0; c0 < R; c0 += 64) {
        __mmask16 m[4];
        for (int j = 0; j < 4; ++j) {
          const int64_t n = std::clamp<int64_t>(R - c0 - 16 * j, 0, 16);
          m[j] = static_cast<__mmask16>((1u << n) - 1u);
        }
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int64_t r = 0; r < Dn; ++r) {
          const __m512 a = _mm512_set1_ps(qn[r]);
          const float* src = wh + r * R + c0;
          for (int j = 0; j < 4; ++j) acc[j] = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m[j], src + 16 * j), acc[j]);
        }
        for (int j = 0; j < 4; ++j) _mm512_mask_storeu_ps(out + c0 + 16 * j, m[j], acc[j]);
      }
#else
      std::fill_n(out, R, 0.0f);
      for (int64_t r = 0; r < Dn; ++r) {
        const float a = qn[r];
        const float* __restrict src = wh + r * R;
        // std::fma: the fused multiply-add promised, also where the build has no FMA instruction
        // (there the plain expression rounds the product first)
        for (int64_t c = 0; c < R; ++c) out[c] = std::fma(a, src[c], out[c]);
      }
#endif
    }
  });
}

void MlaAbsorbOutput(const float* o_lat, const TensorView& kv_b_proj, int64_t T, int64_t H,
                     int64_t Dn, int64_t Dv, float* o) {
  const int64_t R = kv_b_proj.cols();
  // Per head, every token's o_lat through W_UV[h] in batches of GEMV inputs (the rows streamed once
  // per batch); each result equals the one-token GEMV's.
  const int64_t blocks = (T + kMaxBatchGemv - 1) / kMaxBatchGemv;
  ParallelFor(H * blocks, H * T > 1, [&](int64_t i) {
    const int64_t h = i / blocks, t0 = (i % blocks) * kMaxBatchGemv;
    const int64_t row0 = h * (Dn + Dv) + Dn, n = std::min(kMaxBatchGemv, T - t0);
    GemvRowsBatch(o_lat + (t0 * H + h) * R, n, H * R, kv_b_proj, row0, row0 + Dv, o + (t0 * H + h) * Dv,
                  H * Dv, /*accumulate=*/false);
  });
}

}  // namespace r1::kernels
