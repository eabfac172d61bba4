// Embedding lookup: out (T, C) = rows ids[t] of table (V, C), any dtype, dequantized to f32.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace r1::kernels {

void Embedding(const TensorView& table, const int32_t* ids, int64_t T, float* out);

// dtable (V, C) += dout rows scattered to ids.
void EmbeddingBackward(const int32_t* ids, int64_t T, const float* dout, int64_t C, float* dtable);

}  // namespace r1::kernels
