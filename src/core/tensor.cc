#include "core/tensor.h"

#include <cstring>

namespace r1 {

std::string Shape::ToString() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

float TensorView::At(int64_t r, int64_t c) const {
  const int64_t i = r * cols() + c;
  switch (dtype) {
    case DType::kF32: return static_cast<const float*>(data)[i];
    case DType::kBF16: return Bf16ToF32(static_cast<const uint16_t*>(data)[i]);
    case DType::kF8E4M3: {
      const float s = scale_inv ? scale_inv[(r / kFp8Block) * scale_cols() + c / kFp8Block] : 1.0f;
      return Fp8E4M3ToF32(static_cast<const uint8_t*>(data)[i]) * s;
    }
  }
  return 0.0f;
}

void TensorView::RowToF32(int64_t r, float* out) const {
  const int64_t n = cols();
  switch (dtype) {
    case DType::kF32:
      std::memcpy(out, static_cast<const float*>(data) + r * n, static_cast<size_t>(n) * 4);
      return;
    case DType::kBF16: {
      const uint16_t* p = static_cast<const uint16_t*>(data) + r * n;
      for (int64_t c = 0; c < n; ++c) out[c] = Bf16ToF32(p[c]);
      return;
    }
    case DType::kF8E4M3: {
      const uint8_t* p = static_cast<const uint8_t*>(data) + r * n;
      const float* srow = scale_inv ? scale_inv + (r / kFp8Block) * scale_cols() : nullptr;
      for (int64_t c = 0; c < n; ++c)
        out[c] = Fp8E4M3ToF32(p[c]) * (srow ? srow[c / kFp8Block] : 1.0f);
      return;
    }
  }
}

std::vector<float> ToF32(const TensorView& v) {
  std::vector<float> out(static_cast<size_t>(v.numel()));
  for (int64_t r = 0; r < v.rows(); ++r) v.RowToF32(r, out.data() + r * v.cols());
  return out;
}

}  // namespace r1
