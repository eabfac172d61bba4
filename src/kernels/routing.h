// DeepSeek-V3 MoE routing (spec §5.2), per token:
//   s = sigmoid(logits); c = s + bias (selection only);
//   group score = sum of the 2 largest c in each of n_group groups; keep topk_group groups;
//   experts of other groups are masked to -inf; select the top_k of c;
//   w_k = s_k / (Σ_{j∈S} s_j + 1e-20) if norm_topk_prob else s_k;  w_k *= routed_scaling_factor.
// Ties select the lower expert index.
#pragma once

#include <cstdint>

namespace r1::kernels {

struct RouterParams {
  int64_t n_experts = 0;  // E
  int64_t top_k = 0;      // K
  int64_t n_group = 1;
  int64_t topk_group = 1;
  bool norm_topk_prob = true;
  float routed_scaling_factor = 1.0f;
};

// logits: (T, E) router logits (u · W_gateᵀ, f32); bias: (E) or null;
// idx: (T, K) selected experts; weights: (T, K); scores: (T, E) sigmoid scores if non-null.
void RouteV3(const float* logits, const float* bias, int64_t T, const RouterParams& p,
             int32_t* idx, float* weights, float* scores = nullptr);

// Backward of the routing weights (the selection itself has no gradient, spec §10):
// with w_k = R·s_k/Z (Z = Σ_{j∈S} s_j) when norm_topk_prob, else w_k = R·s_k,
//   ds_m += (R/Z)·(dw_m − Σ_k (s_k/Z)·dw_k)   or   ds_m += R·dw_m,   for m in S.
// scores: (T, E) saved sigmoid scores; idx, dweights: (T, K); dscores: (T, E), added to.
void RouteV3Backward(const float* scores, const int32_t* idx, const float* dweights, int64_t T,
                     const RouterParams& p, float* dscores);

// The MoE backward for one routed slot with weight g, whose expert output was y (C): dy (C) =
// g·dh, the gradient the expert's MLP backward takes, and the return value ∂L/∂g = <dh, y>,
// summed in double in row_sum::RowSum's fixed order.
double ExpertSlotBackward(const float* dh, const float* y, float g, int64_t C, float* dy);

// dlogits (T·E) = dscores · s·(1 − s) (assigned).
void SigmoidBackward(const float* scores, const float* dscores, int64_t n, float* dlogits);

// DeepSeek-V3's complementary sequence-wise balance loss (spec §5.6) over the T tokens of one
// sequence: f_i = E/(K·T)·#{t: i ∈ S_t} (constant), P_i = mean_t s_{i,t}/Σ_j s_{j,t},
// loss = alpha·Σ_i f_i·P_i. Returns the loss; adds grad_scale·∂loss/∂s to dscores (T, E).
double BalanceLoss(const float* scores, const int32_t* idx, int64_t T, int64_t E, int64_t K, double alpha,
                   double grad_scale, float* dscores);

}  // namespace r1::kernels
