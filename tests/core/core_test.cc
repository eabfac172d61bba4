#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "core/dtype.h"
#include "core/file.h"
#include "core/memory.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/threads.h"

namespace r1 {
namespace {

TEST(Dtype, Bf16RoundTripAndRounding) {
  EXPECT_EQ(Bf16ToF32(F32ToBf16(1.0f)), 1.0f);
  EXPECT_EQ(Bf16ToF32(F32ToBf16(-3.5f)), -3.5f);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties to even -> 1.0.
  EXPECT_EQ(Bf16ToF32(F32ToBf16(1.0f + 0x1.0p-8f)), 1.0f);
  // 1 + 3·2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 (even) -> 1+2^-6.
  EXPECT_EQ(Bf16ToF32(F32ToBf16(1.0f + 3 * 0x1.0p-8f)), 1.0f + 0x1.0p-6f);
  EXPECT_TRUE(std::isnan(Bf16ToF32(F32ToBf16(NAN))));
}

TEST(Dtype, Fp8E4M3Table) {
  EXPECT_EQ(Fp8E4M3ToF32(0x00), 0.0f);
  EXPECT_EQ(Fp8E4M3ToF32(0x38), 1.0f);         // e=7, m=0
  EXPECT_EQ(Fp8E4M3ToF32(0x7e), 448.0f);       // max finite
  EXPECT_EQ(Fp8E4M3ToF32(0xfe), -448.0f);
  EXPECT_EQ(Fp8E4M3ToF32(0x01), 0x1.0p-9f);    // smallest subnormal
  EXPECT_EQ(Fp8E4M3ToF32(0x08), 0x1.0p-6f);    // smallest normal
  EXPECT_TRUE(std::isnan(Fp8E4M3ToF32(0x7f)));
  EXPECT_TRUE(std::isnan(Fp8E4M3ToF32(0xff)));
  // Every finite code round-trips through the encoder.
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7f) == 0x7f) continue;
    const float v = Fp8E4M3ToF32(static_cast<uint8_t>(b));
    if (v == 0.0f) continue;
    EXPECT_EQ(F32ToFp8E4M3(v), b) << b;
  }
  EXPECT_EQ(F32ToFp8E4M3(1000.0f), 0x7e);  // saturates
  EXPECT_EQ(F32ToFp8E4M3(1.0625f), 0x38);  // halfway 1 and 1.125 -> even mantissa (1.0)
}

TEST(Dtype, Parse) {
  EXPECT_EQ(ParseDType("BF16").value(), DType::kBF16);
  auto r = ParseDType("F16");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(r.status().message().find("F16"), std::string::npos);
}

TEST(Tensor, Fp8BlockScalesApplyPerBlock) {
  // A 130x3 fp8 matrix spans two row blocks; each has its own multiplier.
  std::vector<uint8_t> q(130 * 3, 0x38);  // all 1.0
  const float scales[2] = {0.5f, 4.0f};
  TensorView v{q.data(), DType::kF8E4M3, Shape{130, 3}, scales};
  EXPECT_EQ(v.At(0, 0), 0.5f);
  EXPECT_EQ(v.At(127, 2), 0.5f);
  EXPECT_EQ(v.At(128, 0), 4.0f);
  const auto all = ToF32(v);
  EXPECT_EQ(all[129 * 3 + 1], 4.0f);
}

TEST(Rng, DeterministicAndRoughlyNormal) {
  Rng a(42), b(42);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.NextU64(), b.NextU64());
  Rng r(7);
  double sum = 0, sq = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const double x = r.Normal();
    sum += x;
    sq += x * x;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.03);
  EXPECT_NEAR(sq / n, 1.0, 0.05);
}

TEST(Status, ResultAndContext) {
  Result<int> ok = 3;
  EXPECT_TRUE(ok.ok());
  Result<int> bad = NotFound("x");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().WithContext("file.bin").message(), "file.bin: x");
}

TEST(File, AtomicWriteAndMap) {
  const std::string path = ::testing::TempDir() + "/r1_core_test.bin";
  ASSERT_TRUE(WriteFileAtomic(path, std::string("hello")).ok());
  for (bool in_memory : {false, true}) {
    auto f = MappedFile::Open(path, in_memory);
    ASSERT_TRUE(f.ok());
    ASSERT_EQ((*f)->size(), 5u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>((*f)->data()), 5), "hello");
  }
  EXPECT_EQ(MappedFile::Open(path + ".missing", false).status().code(), StatusCode::kNotFound);
  std::remove(path.c_str());
}

// Read into memory, a file spanning several 2 MiB pages and ending inside one: every byte arrives
// and the copy starts page-aligned (the GEMV's weight loads then start on cache lines).
TEST(File, LoadIntoMemoryAcrossHugePages) {
  const std::string path = ::testing::TempDir() + "/r1_core_big.bin";
  std::string bytes((size_t{3} << 20) + 17, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 131) ^ (i >> 12));
  ASSERT_TRUE(WriteFileAtomic(path, bytes).ok());
  auto f = MappedFile::Open(path, /*load_into_memory=*/true);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ((*f)->size(), bytes.size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*f)->data()) % 4096, 0u);
  EXPECT_EQ(std::memcmp((*f)->data(), bytes.data(), bytes.size()), 0);
  std::remove(path.c_str());
}

TEST(Memory, ScratchVectorStartsOnACacheLine) {
  // The GEMV kernels read an f32 input in place only when it starts on a 64-byte line. Sizes on
  // both sides of the per-thread cache's largest block (256 KiB: 2^16 floats).
  for (size_t n : {1, 3, 16, 17, 1000, 100000, (1 << 16) - 1, 1 << 16, (1 << 16) + 1}) {
    ScratchVector<float> v(n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % 64, 0u) << n;
    v.resize(3 * n + 5);  // regrowth keeps the alignment
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % 64, 0u) << n;
    std::vector<ScratchVector<float>> many(5, ScratchVector<float>(n));
    for (const ScratchVector<float>& m : many) EXPECT_EQ(reinterpret_cast<uintptr_t>(m.data()) % 64, 0u) << n;
  }
  // An explicit value still fills.
  ScratchVector<float> z(1000, 0.0f);
  for (float x : z) ASSERT_EQ(x, 0.0f);
  ScratchVector<int32_t> k(7, 5);
  for (int32_t x : k) ASSERT_EQ(x, 5);
}

// Freed scratch blocks come back to the same thread's next allocation of their size class, up to
// the cache's limits; bigger blocks and blocks past the limit go back to the C allocator.
TEST(Memory, ScratchCacheReusesAThreadsFreedBlocks) {
  if (!ScratchCache::Enabled()) GTEST_SKIP() << "no cache under AddressSanitizer";
  std::thread([] {  // a fresh thread: an empty cache
    EXPECT_EQ(ScratchCache::CachedBytes(), 0u);
    void* a = ScratchCache::Allocate(1000);  // class 1024
    ScratchCache::Deallocate(a, 1000);
    EXPECT_EQ(ScratchCache::CachedBytes(), 1024u);
    void* b = ScratchCache::Allocate(513);  // the same class: the same block
    EXPECT_EQ(b, a);
    EXPECT_EQ(ScratchCache::CachedBytes(), 0u);
    void* c = ScratchCache::Allocate(1025);  // the next class: a new block
    EXPECT_NE(c, a);
    ScratchCache::Deallocate(b, 513);
    ScratchCache::Deallocate(c, 1025);
    EXPECT_EQ(ScratchCache::CachedBytes(), 1024u + 2048u);
    // Above the largest cached block: straight back to the C allocator.
    void* big = ScratchCache::Allocate(ScratchCache::kMaxBlockBytes + 1);
    ScratchCache::Deallocate(big, ScratchCache::kMaxBlockBytes + 1);
    EXPECT_EQ(ScratchCache::CachedBytes(), 1024u + 2048u);
    // The cache never holds more than its limit.
    std::vector<void*> held;
    for (size_t total = 0; total < 2 * ScratchCache::kMaxCachedBytes; total += ScratchCache::kMaxBlockBytes)
      held.push_back(ScratchCache::Allocate(ScratchCache::kMaxBlockBytes));
    for (void* p : held) ScratchCache::Deallocate(p, ScratchCache::kMaxBlockBytes);
    EXPECT_LE(ScratchCache::CachedBytes(), ScratchCache::kMaxCachedBytes);
    EXPECT_GT(ScratchCache::CachedBytes(), ScratchCache::kMaxCachedBytes - ScratchCache::kMaxBlockBytes);
  })
      .join();
}

// A block allocated on one thread and freed on another joins the freeing thread's cache; a
// thread_local scratch vector that outlives its thread's cache still frees its storage.
TEST(Memory, ScratchCacheAcrossThreads) {
  ScratchVector<float>* moved = nullptr;
  std::thread([&] {
    static thread_local ScratchVector<float> outlives;  // constructed before this thread's cache
    moved = new ScratchVector<float>(5000);
    outlives.resize(3000);
  }).join();
  std::thread([&] {
    const size_t before = ScratchCache::CachedBytes(), cached = ScratchCache::Enabled() ? 32768 : 0;
    delete moved;
    EXPECT_EQ(ScratchCache::CachedBytes(), before + cached);
    ScratchVector<float> again(6000);  // the same size class: the block freed above
    EXPECT_EQ(ScratchCache::CachedBytes(), before);
  }).join();
}

// ParallelFor visits every index once; it opens a region only when asked to and when one could
// use more than one thread — never inside a region, where it runs on the calling thread.
TEST(Threads, ParallelForOpensRegionsOnlyWhereTheyHelp) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  for (const Schedule sched : {Schedule::kStatic, Schedule::kDynamic}) {
    std::vector<int> seen(100, 0), level(100, -1);
    ParallelFor(100, true, [&](int64_t i) { ++seen[i]; level[i] = omp_get_level(); }, sched);
    for (int i = 0; i < 100; ++i) {
      EXPECT_EQ(seen[i], 1);
      EXPECT_EQ(level[i], 1);
    }
  }
  std::vector<int> level(10, -1);
  ParallelFor(10, false, [&](int64_t i) { level[i] = omp_get_level(); });
  for (int l : level) EXPECT_EQ(l, 0);  // not worth it: no region at all
  // Inside a region: each thread runs its own loop inline, at the outer region's level.
  std::vector<std::vector<int>> inner(2, std::vector<int>(10, -1));
#pragma omp parallel num_threads(2)
  {
    const int t = omp_get_thread_num();
    EXPECT_FALSE(ParallelAvailable());
    ParallelFor(10, true, [&](int64_t i) { inner[t][i] = omp_get_level(); });
  }
  for (const auto& v : inner)
    for (int l : v) EXPECT_EQ(l, 1);
  omp_set_num_threads(1);
  EXPECT_FALSE(ParallelAvailable());
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace r1
