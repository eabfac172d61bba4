#include "kernels/embedding.h"

namespace r1::kernels {

void Embedding(const TensorView& table, const int32_t* ids, int64_t T, float* out) {
  const int64_t C = table.cols();
  for (int64_t t = 0; t < T; ++t) {
    R1_CHECK(ids[t] >= 0 && ids[t] < table.rows()) << "token id " << ids[t];
    table.RowToF32(ids[t], out + t * C);
  }
}

void EmbeddingBackward(const int32_t* ids, int64_t T, const float* dout, int64_t C, float* dtable) {
  for (int64_t t = 0; t < T; ++t) {
    float* dst = dtable + static_cast<int64_t>(ids[t]) * C;
    for (int64_t c = 0; c < C; ++c) dst[c] += dout[t * C + c];
  }
}

}  // namespace r1::kernels
