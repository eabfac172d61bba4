#include "core/dtype.h"

#include <array>
#include <cmath>
#include <limits>

namespace r1 {

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF8E4M3: return 1;
  }
  return 0;
}

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF8E4M3: return "F8_E4M3";
  }
  return "?";
}

Result<DType> ParseDType(std::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "BF16") return DType::kBF16;
  if (name == "F8_E4M3") return DType::kF8E4M3;
  return Unimplemented("tensor dtype \"" + std::string(name) +
                       "\" is not supported (expected F32, BF16 or F8_E4M3)");
}

namespace {

// Exact e4m3fn decode, usable at compile time.
constexpr float DecodeE4M3(uint8_t b) {
  const int exp = (b >> 3) & 0xf;
  const int man = b & 0x7;
  float v = 0.0f;
  if (exp == 0xf && man == 0x7) {
    v = std::numeric_limits<float>::quiet_NaN();
  } else {
    // normal: (1 + m/8) * 2^(e-7); subnormal: (m/8) * 2^-6
    float scale = 1.0f;
    const int e = exp == 0 ? -6 : exp - 7;
    for (int i = 0; i < e; ++i) scale *= 2.0f;
    for (int i = 0; i > e; --i) scale *= 0.5f;
    v = (exp == 0 ? static_cast<float>(man) / 8.0f : 1.0f + static_cast<float>(man) / 8.0f) * scale;
  }
  return (b & 0x80) ? -v : v;
}

constexpr std::array<float, 256> MakeFp8Table() {
  std::array<float, 256> t{};
  for (int i = 0; i < 256; ++i) t[i] = DecodeE4M3(static_cast<uint8_t>(i));
  return t;
}

}  // namespace

const std::array<float, 256> kFp8E4M3ToF32 = MakeFp8Table();

uint8_t F32ToFp8E4M3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7e;  // saturate to max finite
  // Search the 127 non-negative finite codes for the nearest; ties go to the even code (mantissa
  // LSB 0), which is what round-to-nearest-even gives on this grid.
  int best = 0;
  float best_err = std::numeric_limits<float>::infinity();
  for (int code = 0; code < 0x7f; ++code) {
    const float err = std::fabs(DecodeE4M3(static_cast<uint8_t>(code)) - a);
    if (err < best_err || (err == best_err && (code & 1) == 0)) {
      best = code;
      best_err = err;
    }
  }
  return sign | static_cast<uint8_t>(best);
}

}  // namespace r1
