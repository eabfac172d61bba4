#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace r1 {

double LogSoftmaxAt(const float* logits, int64_t V, int32_t id) {
  const double m = *std::max_element(logits, logits + V);
  double s = 0.0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(static_cast<double>(logits[v]) - m);
  return static_cast<double>(logits[id]) - m - std::log(s);
}

int32_t Sampler::Sample(const float* logits, int64_t V, float* logprob) {
  if (params_.temperature <= 0.0f) {
    const int32_t best = static_cast<int32_t>(std::max_element(logits, logits + V) - logits);
    if (logprob) *logprob = 0.0f;  // the greedy choice is certain
    return best;
  }
  // Candidates sorted by logit (descending, ties by id), cut by top-k.
  order_.resize(static_cast<size_t>(V));
  std::iota(order_.begin(), order_.end(), 0);
  const int64_t k = params_.top_k > 0 ? std::min<int64_t>(params_.top_k, V) : V;
  auto cmp = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (k < V) {
    std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), cmp);
  } else {
    std::sort(order_.begin(), order_.end(), cmp);
  }
  const double inv_t = 1.0 / params_.temperature;
  const double m = logits[order_[0]];
  probs_.resize(static_cast<size_t>(k));
  double sum = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    probs_[i] = static_cast<float>(std::exp((logits[order_[i]] - m) * inv_t));
    sum += probs_[i];
  }
  // Nucleus: the shortest prefix whose mass reaches top_p.
  int64_t n = k;
  if (params_.top_p < 1.0f) {
    double acc = 0.0;
    for (int64_t i = 0; i < k; ++i) {
      acc += probs_[i] / sum;
      if (acc >= params_.top_p) {
        n = i + 1;
        break;
      }
    }
  }
  double kept = 0.0;
  for (int64_t i = 0; i < n; ++i) kept += probs_[i];
  double u = rng_.Uniform() * kept;
  int64_t pick = n - 1;
  for (int64_t i = 0; i < n; ++i) {
    u -= probs_[i];
    if (u < 0) {
      pick = i;
      break;
    }
  }
  if (logprob) *logprob = static_cast<float>(std::log(probs_[pick] / kept));
  return order_[pick];
}

}  // namespace r1
