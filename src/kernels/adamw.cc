#include "kernels/adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threads.h"
#include "kernels/simd.h"

namespace r1::kernels {
namespace {

// The coefficients of one step, taken out of AdamWParams once (a store through g could alias the
// struct's fields, which kept the compiler from vectorizing a loop that read them).
struct Coef {
  float lr, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay, grad_scale, inv_bc1, inv_bc2;
};

Coef MakeCoef(const AdamWParams& a) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(a.beta1), static_cast<double>(a.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(a.beta2), static_cast<double>(a.step));
  return {a.lr,
          a.beta1,
          a.beta2,
          1.0f - a.beta1,
          1.0f - a.beta2,
          a.eps,
          a.weight_decay,
          a.grad_scale,
          static_cast<float>(1.0 / bc1),
          static_cast<float>(1.0 / bc2)};
}

// One element. The vector loop below performs exactly these f32 operations in this order (each
// fma a single rounding), so every element gets the same bits whichever path updates it.
inline void AdamWOne(float& p, float& g, float& m, float& v, const Coef& c) {
  const float gi = g * c.grad_scale;
  g = 0.0f;
  m = std::fma(m, c.beta1, c.one_minus_beta1 * gi);
  v = std::fma(v, c.beta2, (c.one_minus_beta2 * gi) * gi);
  const float mh = m * c.inv_bc1, vh = v * c.inv_bc2;
  const float u = std::fma(c.weight_decay, p, mh / (std::sqrt(vh) + c.eps));
  p = std::fma(-c.lr, u, p);
}

void AdamWRange(float* __restrict p, float* __restrict g, float* __restrict m, float* __restrict v, int64_t lo,
                int64_t hi, const Coef& c) {
  int64_t i = lo;
#ifdef __AVX512F__
  const __m512 lr = _mm512_set1_ps(c.lr), b1 = _mm512_set1_ps(c.beta1), b2 = _mm512_set1_ps(c.beta2);
  const __m512 c1 = _mm512_set1_ps(c.one_minus_beta1), c2 = _mm512_set1_ps(c.one_minus_beta2);
  const __m512 eps = _mm512_set1_ps(c.eps), wd = _mm512_set1_ps(c.weight_decay), gs = _mm512_set1_ps(c.grad_scale);
  const __m512 ib1 = _mm512_set1_ps(c.inv_bc1), ib2 = _mm512_set1_ps(c.inv_bc2);
  for (; i + 16 <= hi; i += 16) {
    const __m512 gi = _mm512_mul_ps(_mm512_loadu_ps(g + i), gs);
    _mm512_storeu_ps(g + i, _mm512_setzero_ps());
    const __m512 mi = _mm512_fmadd_ps(_mm512_loadu_ps(m + i), b1, _mm512_mul_ps(c1, gi));
    const __m512 vi = _mm512_fmadd_ps(_mm512_loadu_ps(v + i), b2, _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    const __m512 mh = _mm512_mul_ps(mi, ib1), vh = _mm512_mul_ps(vi, ib2);
    const __m512 pi = _mm512_loadu_ps(p + i);
    // maskz with every lane: the same square root, without _mm512_sqrt_ps's undefined pass-through
    // operand that GCC 12 warns about.
    const __m512 root = _mm512_maskz_sqrt_ps(static_cast<__mmask16>(0xffff), vh);
    const __m512 u = _mm512_fmadd_ps(wd, pi, _mm512_div_ps(mh, _mm512_add_ps(root, eps)));
    _mm512_storeu_ps(p + i, _mm512_fnmadd_ps(lr, u, pi));
  }
#endif
  for (; i < hi; ++i) AdamWOne(p[i], g[i], m[i], v[i], c);
}

// Elements per work item of the element-wise passes.
constexpr int64_t kAdamBlock = int64_t{1} << 14;
// Elements per partial sum of SumOfSquares (an interface of its result: the blocks fix the order).
constexpr int64_t kSquaresBlock = int64_t{1} << 15;

double SquaresOfBlock(const float* x, int64_t lo, int64_t hi) {
  double acc[8] = {};  // eight independent sums: vectorizes and hides the add latency
  int64_t i = lo;
  for (; i + 8 <= hi; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += static_cast<double>(x[i + k]) * static_cast<double>(x[i + k]);
  for (; i < hi; ++i) acc[0] += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// (tensor, first element) of every block of `block` elements, tensor by tensor; *total = all
// the elements.
template <class Size>
std::vector<std::pair<size_t, int64_t>> Blocks(size_t tensors, Size size_of, int64_t block, int64_t* total) {
  std::vector<std::pair<size_t, int64_t>> items;
  *total = 0;
  for (size_t t = 0; t < tensors; ++t) {
    for (int64_t lo = 0; lo < size_of(t); lo += block) items.emplace_back(t, lo);
    *total += size_of(t);
  }
  return items;
}

}  // namespace

void AdamWStep(float* p, float* g, float* m, float* v, int64_t n, const AdamWParams& a) {
  AdamWStepMany({AdamWTensor{p, g, m, v, n, a}});
}

void AdamWStepMany(const std::vector<AdamWTensor>& tensors) {
  // Every tensor's blocks in one parallel loop: the small tensors of a small model (an expert's
  // 256 x 256 matrix is 4 blocks) would otherwise each open a region of their own.
  std::vector<Coef> coef;
  for (const AdamWTensor& x : tensors) coef.push_back(MakeCoef(x.params));
  int64_t total = 0;
  const auto items = Blocks(tensors.size(), [&](size_t t) { return tensors[t].n; }, kAdamBlock, &total);
  ParallelFor(static_cast<int64_t>(items.size()), total >= (1 << 16), [&](int64_t i) {
    const auto [t, lo] = items[static_cast<size_t>(i)];
    const AdamWTensor& x = tensors[t];
    AdamWRange(x.p, x.g, x.m, x.v, lo, std::min(x.n, lo + kAdamBlock), coef[t]);
  });
}

double SumOfSquares(const float* x, int64_t n) { return SumOfSquaresMany({{x, n}}); }

double SumOfSquaresMany(const std::vector<std::pair<const float*, int64_t>>& tensors) {
  int64_t total = 0;
  const auto items = Blocks(tensors.size(), [&](size_t t) { return tensors[t].second; }, kSquaresBlock, &total);
  std::vector<double> partial(items.size());
  ParallelFor(static_cast<int64_t>(items.size()), total >= (1 << 18), [&](int64_t i) {
    const auto [t, lo] = items[static_cast<size_t>(i)];
    partial[static_cast<size_t>(i)] =
        SquaresOfBlock(tensors[t].first, lo, std::min(tensors[t].second, lo + kSquaresBlock));
  });
  // Each tensor's blocks in order, then the tensors in order.
  double sum = 0.0;
  for (size_t i = 0; i < items.size();) {
    double tensor_sum = 0.0;
    const size_t t = items[i].first;
    for (; i < items.size() && items[i].first == t; ++i) tensor_sum += partial[i];
    sum += tensor_sum;
  }
  return sum;
}

}  // namespace r1::kernels
