#include "kernels/attention.h"

#include <cblas.h>

#include <algorithm>
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

}  // namespace

void AttentionNaive(const float* q, const float* k, const float* v, int64_t T, int64_t S,
                    int64_t H, int64_t Dk, int64_t Dv, float scale, const AttentionMask& mask,
                    float* out, float* probs) {
  const VisibleSpans sp(mask, T, S);
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
            const __m512 c0 = _mm512_loadu_ps(cs), c1 = _mm512_loadu_ps(cs + 16), c2 = _mm512_loadu_ps(cs + 32),
                         c3 = _mm512_loadu_ps(cs + 48);
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
        for (int64_t c = 0; c < R; ++c) out[c] += a * src[c];
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
