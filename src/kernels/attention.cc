#include "kernels/attention.h"

#include <cblas.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/activation.h"
#include "kernels/matmul.h"

namespace r1::kernels {
namespace {

// Sets hidden scores to -inf, then row softmax: scores (T, S).
void MaskedSoftmax(float* scores, int64_t T, int64_t S, const AttentionMask& mask) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t s = 0; s < S; ++s)
      if (!mask.Visible(t, s)) scores[t * S + s] = kNegInf;
  Softmax(scores, T, S);
}

}  // namespace

void AttentionNaive(const float* q, const float* k, const float* v, int64_t T, int64_t S,
                    int64_t H, int64_t Dk, int64_t Dv, float scale, const AttentionMask& mask,
                    float* out, float* probs) {
  std::vector<float> local;
  if (!probs) local.resize(static_cast<size_t>(T * S));
  const int iT = static_cast<int>(T), iS = static_cast<int>(S);
  for (int64_t h = 0; h < H; ++h) {
    float* p = probs ? probs + h * T * S : local.data();
    // p (T, S) = scale · q_h (T, Dk) · k_h (S, Dk)ᵀ; rows of one head are H·Dk apart.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, iT, iS, static_cast<int>(Dk), scale,
                q + h * Dk, static_cast<int>(H * Dk), k + h * Dk, static_cast<int>(H * Dk), 0.0f, p,
                iS);
    MaskedSoftmax(p, T, S, mask);
    // out_h (T, Dv) = p (T, S) · v_h (S, Dv)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, iT, static_cast<int>(Dv), iS, 1.0f, p, iS,
                v + h * Dv, static_cast<int>(H * Dv), 0.0f, out + h * Dv, static_cast<int>(H * Dv));
  }
}

void AttentionNaiveBackward(const float* q, const float* k, const float* v, const float* probs, const float* dout,
                            int64_t T, int64_t S, int64_t H, int64_t Dk, int64_t Dv, float scale, float* dq,
                            float* dk, float* dv) {
  const int iT = static_cast<int>(T), iS = static_cast<int>(S);
  const int ldk = static_cast<int>(H * Dk), ldv = static_cast<int>(H * Dv);
  std::vector<float> dp(static_cast<size_t>(T * S));
  for (int64_t h = 0; h < H; ++h) {
    const float* p = probs + h * T * S;
    // dP (T, S) = dout_h (T, Dv) · v_h (S, Dv)ᵀ
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, iT, iS, static_cast<int>(Dv), 1.0f, dout + h * Dv, ldv,
                v + h * Dv, ldv, 0.0f, dp.data(), iS);
    // dv_h (S, Dv) = P (T, S)ᵀ · dout_h (T, Dv)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, iS, static_cast<int>(Dv), iT, 1.0f, p, iS, dout + h * Dv,
                ldv, 0.0f, dv + h * Dv, ldv);
    // dS = P ⊙ (dP − rowsum(dP ⊙ P)), in place in dp
    for (int64_t t = 0; t < T; ++t) {
      const float* pr = p + t * S;
      float* dr = dp.data() + t * S;
      double dot = 0.0;
      for (int64_t s = 0; s < S; ++s) dot += static_cast<double>(dr[s]) * pr[s];
      const float d = static_cast<float>(dot);
      for (int64_t s = 0; s < S; ++s) dr[s] = pr[s] * (dr[s] - d);
    }
    // dq_h (T, Dk) = scale · dS (T, S) · k_h (S, Dk);  dk_h (S, Dk) = scale · dSᵀ · q_h (T, Dk)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, iT, static_cast<int>(Dk), iS, scale, dp.data(), iS,
                k + h * Dk, ldk, 0.0f, dq + h * Dk, ldk);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, iS, static_cast<int>(Dk), iT, scale, dp.data(), iS,
                q + h * Dk, ldk, 0.0f, dk + h * Dk, ldk);
  }
}

void AttentionLatent(const float* q_lat, const float* q_pe, const float* c, const float* kpe,
                     int64_t T, int64_t S, int64_t H, int64_t R, int64_t Dr, float scale,
                     const AttentionMask& mask, float* o_lat) {
  // All T·H query rows share the one key/value head: scores (T·H, S) in two GEMMs.
  const int TH = static_cast<int>(T * H), iS = static_cast<int>(S);
  std::vector<float> p(static_cast<size_t>(T * H * S));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TH, iS, static_cast<int>(R), scale, q_lat,
              static_cast<int>(R), c, static_cast<int>(R), 0.0f, p.data(), iS);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TH, iS, static_cast<int>(Dr), scale, q_pe,
              static_cast<int>(Dr), kpe, static_cast<int>(Dr), 1.0f, p.data(), iS);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
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
#pragma omp parallel for collapse(2) schedule(static) if (H * T > 1)
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t row0 = h * (Dn + Dv);
      GemvTransposedRows(q + t * token_stride + h * head_stride, kv_b_proj, row0, row0 + Dn,
                         q_lat + (t * H + h) * R, /*accumulate=*/false);
    }
}

void MlaAbsorbOutput(const float* o_lat, const TensorView& kv_b_proj, int64_t T, int64_t H,
                     int64_t Dn, int64_t Dv, float* o) {
  const int64_t R = kv_b_proj.cols();
#pragma omp parallel if (H * T > 1)
  {
    // GemvRows writes out[n] at the row index n: give it a whole kv_b_proj-sized output row.
    std::vector<float> full(static_cast<size_t>(kv_b_proj.rows()));
#pragma omp for collapse(2) schedule(static)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t row0 = h * (Dn + Dv) + Dn;
        GemvRows(o_lat + (t * H + h) * R, kv_b_proj, row0, row0 + Dv, full.data(), false);
        std::copy(full.begin() + row0, full.begin() + row0 + Dv, o + (t * H + h) * Dv);
      }
  }
}

}  // namespace r1::kernels
