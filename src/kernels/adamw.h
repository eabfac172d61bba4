// AdamW with decoupled weight decay (f32 master weights and moments):
//   m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;  m̂ = m/(1−β1^t);  v̂ = v/(1−β2^t)
//   p −= lr·(m̂/(√v̂ + ε) + wd·p)
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace r1::kernels {

struct AdamWParams {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // 0 for norms and biases
  int64_t step = 1;           // t, counted from 1
  float grad_scale = 1.0f;    // g is read as grad_scale·g (clipping by global norm)
};

// p, m, v updated in place from g; all (n). g is consumed: each element is set to 0 once read,
// which leaves the gradient ready for the next step's accumulation without a separate pass.
void AdamWStep(float* p, float* g, float* m, float* v, int64_t n, const AdamWParams& a);

// One step of several tensors, each with its own parameters, in one parallel pass; each element
// exactly as AdamWStep updates it.
struct AdamWTensor {
  float* p;
  float* g;
  float* m;
  float* v;
  int64_t n;
  AdamWParams params;
};
void AdamWStepMany(const std::vector<AdamWTensor>& tensors);

// Σ x[i]² in double. Summed in fixed blocks whose partial sums are added in order, so the result
// is the same for any thread count.
double SumOfSquares(const float* x, int64_t n);

// Σ over the tensors of SumOfSquares(tensor), added in tensor order: the same double, with all the
// tensors' blocks in one parallel pass.
double SumOfSquaresMany(const std::vector<std::pair<const float*, int64_t>>& tensors);

}  // namespace r1::kernels
