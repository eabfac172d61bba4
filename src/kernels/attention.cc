#include "kernels/attention.h"

#include <cblas.h>

#include <limits>
#include <vector>

#include "kernels/activation.h"

namespace r1::kernels {
namespace {

inline bool Visible(const AttentionMask& m, int64_t t, int64_t s) {
  const int64_t kp = m.k_pos ? m.k_pos[s] : s;
  if (kp > m.q_pos[t]) return false;
  return !(m.q_doc && m.k_doc && m.q_doc[t] != m.k_doc[s]);
}

// Sets hidden scores to -inf, then row softmax: scores (T, S).
void MaskedSoftmax(float* scores, int64_t T, int64_t S, const AttentionMask& mask) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t s = 0; s < S; ++s)
      if (!Visible(mask, t, s)) scores[t * S + s] = kNegInf;
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
      if (!Visible(mask, t, s))
        for (int64_t h = 0; h < H; ++h) p[(t * H + h) * S + s] = kNegInf;
  Softmax(p.data(), T * H, S);
  // o_lat (T·H, R) = p (T·H, S) · c (S, R)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, TH, static_cast<int>(R), iS, 1.0f,
              p.data(), iS, c, static_cast<int>(R), 0.0f, o_lat, static_cast<int>(R));
}

}  // namespace r1::kernels
