// Causal softmax attention for MLA, in both of its forms (spec §3.2, §3.3).
//
// Visibility: key s is visible to query t iff k_pos[s] <= q_pos[t] and, when document ids are
// given, q_doc[t] == k_doc[s] (packed training sequences). Scores and softmax are f32.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace r1::kernels {

struct AttentionMask {
  const int32_t* q_pos = nullptr;  // (T) absolute positions of the queries; required
  const int32_t* k_pos = nullptr;  // (S) positions of the keys; null = 0..S-1
  const int32_t* q_doc = nullptr;  // (T) document ids, or null for one document
  const int32_t* k_doc = nullptr;  // (S)

  // Whether key s is visible to query t.
  bool Visible(int64_t t, int64_t s) const {
    const int64_t kp = k_pos ? k_pos[s] : s;
    if (kp > q_pos[t]) return false;
    return !(q_doc && k_doc && q_doc[t] != k_doc[s]);
  }
};

// Naive MHA form (prefill, training):
//   q: (T, H, Dk); k: (S, H, Dk); v: (S, H, Dv); out: (T, H, Dv)
//   out[t,h] = Σ_s softmax_s(scale·<q[t,h], k[s,h]>) v[s,h]
// probs: (H, T, S) if non-null, the softmax saved for backward.
void AttentionNaive(const float* q, const float* k, const float* v, int64_t T, int64_t S,
                    int64_t H, int64_t Dk, int64_t Dv, float scale, const AttentionMask& mask,
                    float* out, float* probs = nullptr);

// Backward of AttentionNaive. Reads q, k, v and the saved probs (H, T, S) of the same mask;
// assigns dq (T, H, Dk), dk (S, H, Dk), dv (S, H, Dv). Per head: dP = dout·vᵀ, dv = Pᵀ·dout,
// dS = P ⊙ (dP − rowsum(dP ⊙ P)), dq = scale·dS·k, dk = scale·dSᵀ·q.
//
// Both run heads in parallel (one thread each). With AVX-512 and head widths that are multiples of
// 16 (Dk, Dv), every product runs in 16-lane register tiles over the keys 4 query rows see (and
// the key gradients over the rows that see 4 keys); otherwise BLAS runs blocks of 64 query rows
// whose GEMMs span only the keys some row of the block sees. A causal mask costs about
// (1 + rows/T)/2 of the full product either way.
void AttentionNaiveBackward(const float* q, const float* k, const float* v, const float* probs, const float* dout,
                            int64_t T, int64_t S, int64_t H, int64_t Dk, int64_t Dv, float scale,
                            const AttentionMask& mask, float* dq, float* dk, float* dv);

// Absorbed form (decode with the latent cache): one shared key/value "head" made of the
// normalized kv latent c (S, R) and the rotated rope key kpe (S, Dr):
//   q_lat: (T, H, R); q_pe: (T, H, Dr); c: (S, R); kpe: (S, Dr); o_lat: (T, H, R)
//   o_lat[t,h] = Σ_s softmax_s(scale·(<q_lat[t,h], c[s]> + <q_pe[t,h], kpe[s]>)) c[s]
void AttentionLatent(const float* q_lat, const float* q_pe, const float* c, const float* kpe,
                     int64_t T, int64_t S, int64_t H, int64_t R, int64_t Dr, float scale,
                     const AttentionMask& mask, float* o_lat);

}  // namespace r1::kernels

namespace r1::kernels {

// MLA weight absorption (spec §3.3) with kv_b_proj (H·(Dn+Dv), R) viewed per head as
// W_UK[h] = rows [h·(Dn+Dv), h·(Dn+Dv)+Dn) and W_UV[h] = the next Dv rows:
//   q_lat[t,h] = W_UK[h]ᵀ · q_nope[t,h]       q_nope[t,h] at q + t·token_stride + h·head_stride (Dn values); q_lat: (T, H, R)
//   o[t,h]     = W_UV[h] · o_lat[t,h]          o_lat: (T, H, R); o: (T, H, Dv)
// OpenMP over heads.
void MlaAbsorbQuery(const float* q, int64_t token_stride, int64_t head_stride,
                    const TensorView& kv_b_proj, int64_t T, int64_t H, int64_t Dn, int64_t Dv,
                    float* q_lat);
void MlaAbsorbOutput(const float* o_lat, const TensorView& kv_b_proj, int64_t T, int64_t H,
                     int64_t Dn, int64_t Dv, float* o);

}  // namespace r1::kernels
