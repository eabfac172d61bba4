// Tensor views over contiguous row-major buffers, and an owning f32/bf16 buffer.
//
// A view does not own its bytes: they belong to a memory-mapped file, an arena or a Tensor.
// Shapes are at most 4-D; `shape[0]` is the slowest dimension. An F8_E4M3 view carries its
// 128x128 block scales (`scale_inv`, f32, [ceil(rows/128), ceil(cols/128)]) — the multiplier that
// turns the stored value into the real one (spec §7.2).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/dtype.h"

namespace r1 {

inline constexpr int kMaxDims = 4;

struct Shape {
  int ndim = 0;
  std::array<int64_t, kMaxDims> dims{};

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) {
    R1_CHECK(d.size() <= kMaxDims);
    for (int64_t v : d) dims[ndim++] = v;
  }
  static Shape FromVector(const std::vector<int64_t>& d) {
    Shape s;
    R1_CHECK(d.size() <= kMaxDims);
    for (int64_t v : d) s.dims[s.ndim++] = v;
    return s;
  }
  int64_t operator[](int i) const { return dims[i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= dims[i];
    return n;
  }
  // Rows of the 2-D view a matrix routine sees: all but the last dimension.
  int64_t rows() const { return ndim == 0 ? 1 : numel() / dims[ndim - 1]; }
  int64_t cols() const { return ndim == 0 ? 1 : dims[ndim - 1]; }
  bool operator==(const Shape& o) const {
    if (ndim != o.ndim) return false;
    for (int i = 0; i < ndim; ++i)
      if (dims[i] != o.dims[i]) return false;
    return true;
  }
  std::string ToString() const;  // "[576, 7168]"
};

struct TensorView {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;
  // F8_E4M3 only: block multipliers, row-major [ceil(rows/128), ceil(cols/128)].
  const float* scale_inv = nullptr;
  // F32 matrices only, optional: a bf16 copy packed for bf16 products (kernels::PackBf16Weight),
  // which the kernels' MatMul, MatMulMany and GemvRowsBatch then multiply by, for any row count,
  // instead of `data` (a bf16 rollout policy). Everything else reads `data`.
  const uint32_t* bf16_packed = nullptr;
  // With bf16_packed, optional: wᵀ packed the same way (kernels::PackBf16WeightTransposed), which
  // the kernels' MatMulBackward multiplies the output gradient by for dx (a bf16 GRPO update).
  const uint32_t* bf16_packed_t = nullptr;

  bool empty() const { return data == nullptr; }
  int64_t numel() const { return shape.numel(); }
  int64_t rows() const { return shape.rows(); }
  int64_t cols() const { return shape.cols(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype); }
  int64_t scale_cols() const { return (cols() + kFp8Block - 1) / kFp8Block; }

  const float* f32() const {
    R1_CHECK(dtype == DType::kF32) << DTypeName(dtype);
    return static_cast<const float*>(data);
  }
  // Element (r, c) of the 2-D view, dequantized to f32 (slow; for references and tests).
  float At(int64_t r, int64_t c) const;
  // Row r of the 2-D view dequantized into out[0..cols).
  void RowToF32(int64_t r, float* out) const;
};

// The whole view dequantized to f32 (row-major), for references, tests and training masters.
std::vector<float> ToF32(const TensorView& v);

// An owning f32 buffer with a shape, for activations and trainable weights.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape) : shape_(shape), data_(static_cast<size_t>(shape.numel()), 0.0f) {}
  Tensor(Shape shape, std::vector<float> data) : shape_(shape), data_(std::move(data)) {
    R1_CHECK_EQ(static_cast<int64_t>(data_.size()), shape_.numel());
  }

  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_.numel(); }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  std::vector<float>& vec() { return data_; }
  const std::vector<float>& vec() const { return data_; }
  float& operator[](int64_t i) { return data_[static_cast<size_t>(i)]; }
  float operator[](int64_t i) const { return data_[static_cast<size_t>(i)]; }

  TensorView view() const { return TensorView{data_.data(), DType::kF32, shape_, nullptr}; }

 private:
  Shape shape_;
  std::vector<float> data_;
};

}  // namespace r1
