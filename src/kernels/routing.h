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

}  // namespace r1::kernels
