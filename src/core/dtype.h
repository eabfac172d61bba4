// Element types of tensors on disk and in memory: f32, bf16 and fp8 e4m3 (with 128x128 block
// scales, spec §7.2), plus the exact conversions between them.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/status.h"

namespace r1 {

enum class DType : uint8_t { kF32, kBF16, kF8E4M3 };

// Bytes per element.
size_t DTypeSize(DType t);
// Safetensors spelling: "F32", "BF16", "F8_E4M3".
const char* DTypeName(DType t);
// Parses the safetensors spelling; anything else is kUnimplemented naming the dtype.
Result<DType> ParseDType(std::string_view name);

// bf16 is the top half of an f32.
inline float Bf16ToF32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest, ties to even (as torch's .to(bfloat16)); NaN stays NaN.
inline uint16_t F32ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// float8_e4m3fn: 1 sign, 4 exponent bits (bias 7), 3 mantissa bits, no infinities,
// S.1111.111 is NaN, max finite ±448. Decoding goes through a 256-entry table.
extern const std::array<float, 256> kFp8E4M3ToF32;
inline float Fp8E4M3ToF32(uint8_t b) { return kFp8E4M3ToF32[b]; }
// Round to nearest even, saturating to ±448 (as torch's .to(float8_e4m3fn) of in-range values).
uint8_t F32ToFp8E4M3(float f);

// FP8 weights are quantized in square blocks of this many rows and columns.
inline constexpr int64_t kFp8Block = 128;

}  // namespace r1
