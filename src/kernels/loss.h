// Cross-entropy over the vocabulary, forward and backward in one pass (the logits are not
// needed afterwards, so their buffer becomes the gradient).
#pragma once

#include <cstdint>

namespace r1::kernels {

// logits: (T, V), overwritten by grad_scale·(softmax − onehot) for rows with a target and by 0
// for rows whose target is −1. Returns Σ over valid rows of −log softmax[target] (f64); *n_valid
// receives their count.
double CrossEntropyForwardBackward(float* logits, const int32_t* targets, int64_t T, int64_t V, float grad_scale,
                                   int64_t* n_valid);

}  // namespace r1::kernels
