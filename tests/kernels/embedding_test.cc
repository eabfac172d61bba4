// Embedding lookup for f32, bf16 and fp8 tables: rows dequantized exactly (value × block scale).
#include <gtest/gtest.h>

#include "kernels/embedding.h"
#include "test_util.h"

namespace r1::kernels {
namespace {

using testing::RandomWeight;

TEST(Embedding, AllDtypesExact) {
  Rng rng(15);
  const int64_t V = 300, C = 260;  // partial 128-blocks in both dims for fp8
  const std::vector<int32_t> ids = {0, 299, 128, 127, 255, 256, 0, 17};
  const int64_t T = static_cast<int64_t>(ids.size());
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF8E4M3}) {
    RandomWeight table(rng, dt, V, C);
    std::vector<float> out(T * C);
    Embedding(table.view(), ids.data(), T, out.data());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) {
        const size_t i = static_cast<size_t>(ids[t] * C + c);
        float want = 0;
        switch (dt) {
          case DType::kF32: want = table.f32[i]; break;
          case DType::kBF16: want = Bf16ToF32(table.bf16[i]); break;
          case DType::kF8E4M3:
            want = Fp8E4M3ToF32(table.fp8[i]) * table.scale[(ids[t] / 128) * 3 + c / 128];
            break;
        }
        ASSERT_EQ(out[t * C + c], want) << DTypeName(dt) << " token " << t << " col " << c;
      }
  }
}

}  // namespace
}  // namespace r1::kernels
