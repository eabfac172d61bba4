#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/vec_exp.h"

namespace r1 {

double LogSoftmaxAt(const float* logits, int64_t V, int32_t id, float temperature) {
  const float* z = logits;
  thread_local std::vector<float> scaled;  // logits / temperature, when that is not 1
  if (temperature != 1.0f) {
    const float inv = 1.0f / temperature;
    scaled.resize(static_cast<size_t>(V));
    for (int64_t v = 0; v < V; ++v) scaled[static_cast<size_t>(v)] = logits[v] * inv;
    z = scaled.data();
  }
  const float m = kernels::MaxOf(z, V);
  const double s = kernels::ExpShifted(z, V, m, 1.0f, nullptr);
  return static_cast<double>(z[id]) - m - std::log(s);
}

namespace {

// Position i in [0, n) drawn with probability probs[id_at(i)] / mass, for u uniform in [0, 1).
// Rounding can leave u above the last step's mass: then the last position with nonzero
// probability, never one that cannot occur.
template <class IdAt>
int64_t Draw(const std::vector<float>& probs, int64_t n, double mass, double u, IdAt id_at) {
  u *= mass;
  for (int64_t i = 0; i < n; ++i) {
    u -= probs[static_cast<size_t>(id_at(i))];
    if (u < 0) return i;
  }
  int64_t i = n - 1;
  while (i > 0 && probs[static_cast<size_t>(id_at(i))] == 0.0f) --i;
  return i;
}

}  // namespace

int32_t Sampler::Sample(const float* logits, int64_t V, float* logprob) {
  if (params_.temperature <= 0.0f) {
    const int32_t best = static_cast<int32_t>(std::max_element(logits, logits + V) - logits);
    if (logprob) *logprob = 0.0f;  // the greedy choice is certain
    return best;
  }
  // Unnormalized probabilities exp((l − max) / T) over the whole vocabulary: one vectorized pass.
  const float inv_t = 1.0f / params_.temperature;
  probs_.resize(static_cast<size_t>(V));
  float m = -INFINITY;
  for (int64_t v = 0; v < V; ++v) {
    probs_[v] = logits[v] * inv_t;
    m = std::max(m, probs_[v]);
  }
  const double total = kernels::ExpShifted(probs_.data(), V, m, 1.0f, probs_.data());
  const int64_t k = params_.top_k > 0 ? std::min<int64_t>(params_.top_k, V) : V;
  // Without top-k or top-p every token is a candidate, in id order.
  if (k == V && params_.top_p >= 1.0f) {
    const int64_t pick = Draw(probs_, V, total, rng_.Uniform(), [](int64_t i) { return i; });
    if (logprob) *logprob = static_cast<float>(std::log(probs_[pick] / total));
    return static_cast<int32_t>(pick);
  }
  // Candidates by logit, descending, ties by id: the top k, of which the top-p cut keeps the
  // shortest prefix whose mass (relative to the top k) reaches top_p. Only as long a prefix as
  // the cut needs is sorted: 64, then 4x longer until the mass is reached.
  order_.resize(static_cast<size_t>(V));
  std::iota(order_.begin(), order_.end(), 0);
  auto cmp = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  double mass_k = total;
  if (k < V) {
    std::nth_element(order_.begin(), order_.begin() + (k - 1), order_.end(), cmp);
    mass_k = 0.0;
    for (int64_t i = 0; i < k; ++i) mass_k += probs_[order_[i]];
  }
  int64_t n = k;
  if (params_.top_p >= 1.0f) {  // top-k only: the k candidates, in order
    std::sort(order_.begin(), order_.begin() + k, cmp);
  } else {
    int64_t sorted = 0;
    double acc = 0.0;
    for (int64_t len = std::min<int64_t>(k, 64);; len = std::min<int64_t>(k, len * 4)) {
      std::partial_sort(order_.begin(), order_.begin() + len, order_.begin() + k, cmp);
      for (; sorted < len && n == k; ++sorted) {
        acc += probs_[order_[sorted]] / mass_k;
        if (acc >= params_.top_p) n = sorted + 1;
      }
      if (n < k || len == k) break;
    }
  }
  double kept = 0.0;
  for (int64_t i = 0; i < n; ++i) kept += probs_[order_[i]];
  const int64_t pick = Draw(probs_, n, kept, rng_.Uniform(), [&](int64_t i) { return order_[i]; });
  if (logprob) *logprob = static_cast<float>(std::log(probs_[order_[pick]] / kept));
  return order_[pick];
}

}  // namespace r1
