// AdamW with decoupled weight decay (f32 master weights and moments):
//   m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;  m̂ = m/(1−β1^t);  v̂ = v/(1−β2^t)
//   p −= lr·(m̂/(√v̂ + ε) + wd·p)
#pragma once

#include <cstdint>

namespace r1::kernels {

struct AdamWParams {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // 0 for norms and biases
  int64_t step = 1;           // t, counted from 1
};

// p, m, v updated in place from g; all (n).
void AdamWStep(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& a);

}  // namespace r1::kernels
