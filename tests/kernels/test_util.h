// Helpers shared by the kernel tests: seeded random inputs, weights in every dtype (fp8 with one
// random multiplier per 128x128 block), and a tolerance check relative to a stated magnitude.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace r1::kernels::testing {

inline std::vector<float> RandomVec(Rng& rng, int64_t n, double stddev = 1.0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.Normal() * stddev);
  return v;
}

inline std::vector<double> ToDouble(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// A random (N, K) weight that owns its bytes. fp8 codes are drawn uniformly over all 254 finite
// codes (so every decode path, subnormals and ±0 included, is exercised) and each 128x128 block
// gets its own multiplier in [2^-10, 2^-6).
struct RandomWeight {
  DType dtype;
  int64_t N, K;
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  std::vector<uint8_t> fp8;
  std::vector<float> scale;

  RandomWeight(Rng& rng, DType dt, int64_t n, int64_t k) : dtype(dt), N(n), K(k) {
    const size_t numel = static_cast<size_t>(N * K);
    switch (dtype) {
      case DType::kF32: f32 = RandomVec(rng, N * K); break;
      case DType::kBF16:
        bf16.resize(numel);
        for (auto& b : bf16) b = F32ToBf16(static_cast<float>(rng.Normal()));
        break;
      case DType::kF8E4M3: {
        fp8.resize(numel);
        for (auto& b : fp8) {
          do b = static_cast<uint8_t>(rng.Below(256));
          while ((b & 0x7f) == 0x7f);
        }
        const int64_t sr = (N + kFp8Block - 1) / kFp8Block, sc = (K + kFp8Block - 1) / kFp8Block;
        scale.resize(static_cast<size_t>(sr * sc));
        for (auto& s : scale) s = std::ldexp(static_cast<float>(1.0 + rng.Uniform()), -10 + static_cast<int>(rng.Below(4)));
        break;
      }
    }
  }
  TensorView view() const {
    const void* data = dtype == DType::kF32    ? static_cast<const void*>(f32.data())
                       : dtype == DType::kBF16 ? static_cast<const void*>(bf16.data())
                                               : static_cast<const void*>(fp8.data());
    return TensorView{data, dtype, Shape{N, K}, dtype == DType::kF8E4M3 ? scale.data() : nullptr};
  }
};

// Fails unless |got[i] − want[i]| <= rtol·mag[i] + atol for every i; reports the worst element.
inline void ExpectClose(const float* got, const double* want, const double* mag, int64_t n,
                        double rtol, double atol, const std::string& what) {
  int64_t worst = -1;
  double worst_ratio = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double bound = rtol * (mag ? mag[i] : std::fabs(want[i])) + atol;
    if (!(err <= bound) && (worst < 0 || err / bound > worst_ratio)) {
      worst = i;
      worst_ratio = err / bound;
    }
  }
  EXPECT_LT(worst, 0) << what << ": element " << worst << " got " << (worst >= 0 ? got[worst] : 0)
                      << " want " << (worst >= 0 ? want[worst] : 0) << " (" << worst_ratio
                      << "x the tolerance)";
}

}  // namespace r1::kernels::testing
