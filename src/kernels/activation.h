// Pointwise and row-wise activations.
#pragma once

#include <cmath>
#include <cstdint>

namespace r1::kernels {

// x: (rows, n) softmax over each row in place, in f32 with max subtraction. -inf entries get 0.
void Softmax(float* x, int64_t rows, int64_t n);

// gate, up, out: (n);  out = silu(gate) ⊙ up, silu(z) = z·σ(z). out may alias gate or up.
// sigmoid, when given, gets σ(gate) for the backward (the same values it would compute). With
// AVX-512, e^x is Exp16's (vec_exp.h: within 2 ulp of expf, not its bits), for every element.
void SwiGLU(const float* gate, const float* up, float* out, int64_t n, float* sigmoid = nullptr);

// SwiGLU backward: reads gate and up; assigns dgate = dout·up·σ(g)(1 + g(1−σ(g))), dup = dout·silu(g).
// dgate/dup may alias gate/up. σ(g) is read from `sigmoid` (saved by the forward) when given,
// which saves the exp; the results are the same bits either way.
void SwiGLUBackward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n,
                    const float* sigmoid = nullptr);

inline float Sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

namespace ref {
template <typename F>
void Softmax(F* x, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    F* v = x + r * n;
    F m = v[0];
    for (int64_t i = 1; i < n; ++i) m = v[i] > m ? v[i] : m;
    if (std::isinf(m) && m < 0) {  // fully masked row: zeros, as the fast kernel
      for (int64_t i = 0; i < n; ++i) v[i] = 0;
      continue;
    }
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(v[i] - m));
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<F>(std::exp(static_cast<double>(v[i] - m)) / sum);
  }
}
template <typename F>
void SwiGLU(const F* gate, const F* up, F* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<F>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}
template <typename F>
void SwiGLUBackward(const F* gate, const F* up, const F* dout, F* dgate, F* dup, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i], s = 1.0 / (1.0 + std::exp(-g));
    const double dg = dout[i] * static_cast<double>(up[i]) * s * (1.0 + g * (1.0 - s));
    dup[i] = static_cast<F>(dout[i] * g * s);
    dgate[i] = static_cast<F>(dg);
  }
}
}  // namespace ref

}  // namespace r1::kernels
