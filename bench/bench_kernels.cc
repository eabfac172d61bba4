// bench_kernels: decode GEMV throughput (GB/s of weight bytes) per dtype and thread count, as a
// fraction of the measured streaming-read bandwidth, MatMul GFLOP/s for T=64 prefill panels, and
// the bf16 products by packed weights (`r1 grpo --precision bf16`'s rollout and update) on one
// thread for each bf16 engine the CPU has (AVX-512 vectors; AMX tiles where available).
//
//   bench_kernels [--json] [--reps N] [--threads a,b] [--only gemv|matmul|bf16|bw]
//
// Every GEMV sweep cycles through enough copies of the matrix (≥ 768 MiB, well past the LLC) that
// weights come from DRAM as they do in a real decode step. Reported numbers are medians over
// `reps` sweeps; the machines this runs on are shared and noisy.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "kernels/runtime.h"

namespace {

using r1::DType;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<uint8_t, AlignedFree>;

Buffer Allocate(size_t bytes) {
  bytes = (bytes + 4095) / 4096 * 4096;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
  if (!p) {
    std::fprintf(stderr, "bench_kernels: cannot allocate %zu bytes\n", bytes);
    std::exit(1);
  }
  return Buffer(p);
}

// Streaming read: Σ of a buffer of floats, 8 independent accumulators per thread.
double StreamSum(const float* p, size_t n) {
  double total = 0;
#pragma omp parallel reduction(+ : total)
  {
    __m512 a[8];
    for (auto& v : a) v = _mm512_setzero_ps();
#pragma omp for schedule(static)
    for (size_t i = 0; i < n; i += 128)
      for (int j = 0; j < 8; ++j) a[j] = _mm512_add_ps(a[j], _mm512_load_ps(p + i + 16 * j));
    alignas(64) float lanes[16];
    for (int j = 1; j < 8; ++j) a[0] = _mm512_add_ps(a[0], a[j]);
    _mm512_store_ps(lanes, a[0]);
    for (float l : lanes) total += l;
  }
  return total;
}

volatile double g_sink;

double MeasureBandwidth(int threads, int reps) {
  constexpr size_t kBytes = size_t{1} << 30;
  static Buffer buf;
  if (!buf) {
    buf = Allocate(kBytes);
    float* f = reinterpret_cast<float*>(buf.get());
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < kBytes / 4; ++i) f[i] = static_cast<float>(i & 1023);
  }
  omp_set_num_threads(threads);
  const float* f = reinterpret_cast<const float*>(buf.get());
  g_sink = StreamSum(f, kBytes / 4);  // warm-up
  std::vector<double> gbs;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    g_sink = StreamSum(f, kBytes / 4);
    gbs.push_back(kBytes / Seconds(t0, Clock::now()) / 1e9);
  }
  return Median(gbs);
}

// `copies` random (N, K) matrices of one dtype back to back, with fp8 block scales.
struct MatrixPool {
  DType dtype;
  int64_t N, K;
  size_t bytes_each;
  int copies;
  Buffer data;
  std::vector<float> scales;

  MatrixPool(DType dt, int64_t n, int64_t k, size_t min_total) : dtype(dt), N(n), K(k) {
    bytes_each = static_cast<size_t>(N * K) * r1::DTypeSize(dtype);
    copies = static_cast<int>(std::max<size_t>(1, (min_total + bytes_each - 1) / bytes_each));
    data = Allocate(bytes_each * copies);
    r1::Rng rng(42);
    uint8_t* first = data.get();
    for (int64_t i = 0; i < N * K; ++i) {
      const float v = static_cast<float>(rng.Normal());
      switch (dtype) {
        case DType::kF32: std::memcpy(first + 4 * i, &v, 4); break;
        case DType::kBF16: {
          const uint16_t b = r1::F32ToBf16(v);
          std::memcpy(first + 2 * i, &b, 2);
          break;
        }
        case DType::kF8E4M3: {
          uint8_t c = static_cast<uint8_t>(rng.Below(256));
          if ((c & 0x7f) == 0x7f) c = 0;
          first[i] = c;
          break;
        }
      }
    }
#pragma omp parallel for schedule(static)
    for (int c = 1; c < copies; ++c) std::memcpy(first + c * bytes_each, first, bytes_each);
    scales.assign(static_cast<size_t>(((N + 127) / 128) * ((K + 127) / 128)), 0.01f);
  }
  r1::TensorView view(int c) const {
    return r1::TensorView{data.get() + c * bytes_each, dtype, r1::Shape{N, K},
                          dtype == DType::kF8E4M3 ? scales.data() : nullptr};
  }
};

struct GemvResult {
  std::string dtype;
  int64_t N, K;
  int threads;
  double gbs, frac;
};

GemvResult MeasureGemv(const MatrixPool& pool, int threads, int reps, double bw) {
  omp_set_num_threads(threads);
  std::vector<float> x(pool.K), out(pool.N);
  r1::Rng rng(1);
  for (auto& v : x) v = static_cast<float>(rng.Normal());
  for (int c = 0; c < pool.copies; ++c) r1::kernels::Gemv(x.data(), pool.view(c), out.data());
  std::vector<double> gbs;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    for (int c = 0; c < pool.copies; ++c) r1::kernels::Gemv(x.data(), pool.view(c), out.data());
    gbs.push_back(static_cast<double>(pool.bytes_each) * pool.copies / Seconds(t0, Clock::now()) / 1e9);
  }
  g_sink = out[0];
  const double m = Median(gbs);
  return {r1::DTypeName(pool.dtype), pool.N, pool.K, threads, m, m / bw};
}

struct MatMulResult {
  std::string dtype;
  int64_t T, N, K;
  int threads;
  double gflops;
};

MatMulResult MeasureMatMul(DType dt, int64_t T, int64_t N, int64_t K, int threads, int reps) {
  omp_set_num_threads(threads);
  MatrixPool pool(dt, N, K, 0);
  std::vector<float> x(T * K), out(T * N);
  r1::Rng rng(2);
  for (auto& v : x) v = static_cast<float>(rng.Normal());
  r1::kernels::MatMul(x.data(), T, pool.view(0), out.data());
  std::vector<double> gf;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    r1::kernels::MatMul(x.data(), T, pool.view(0), out.data());
    gf.push_back(2.0 * T * N * K / Seconds(t0, Clock::now()) / 1e9);
  }
  g_sink = out[0];
  return {r1::DTypeName(dt), T, N, K, threads, Median(gf)};
}

// One thread: T rows by `count` packed bf16 weights of N × K in turn (count 1: the weight stays in
// cache; more: the rollout's case, each decode step streaming every expert's weights once).
double MeasurePackedBf16(int64_t T, int64_t N, int64_t K, int count, int reps) {
  using namespace r1::kernels;
  r1::Rng rng(3);
  std::vector<float> w(N * K), x(T * K), out(T * N);
  for (auto& v : w) v = static_cast<float>(rng.Normal());
  for (auto& v : x) v = static_cast<float>(rng.Normal());
  std::vector<std::vector<uint32_t>> packed(static_cast<size_t>(count));
  for (auto& p : packed) {
    p.resize(static_cast<size_t>(PackedBf16WeightWords(N, K)));
    PackBf16Weight(w.data(), N, K, p.data());
  }
  std::vector<uint32_t> xp(static_cast<size_t>(PackedBf16RowsWords(T, K)));
  PackBf16Rows(x.data(), T, K, K, xp.data());
  const int64_t inner = std::max<int64_t>(1, (int64_t{1} << 27) / (2 * T * N * K * count));  // ~1.3e8 flops a sweep
  auto sweep = [&] {
    for (int64_t i = 0; i < inner; ++i)
      for (const auto& p : packed) PackedBf16Product(xp.data(), T, K, p.data(), N, 0, N, out.data(), N, false);
  };
  sweep();
  std::vector<double> gf;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    sweep();
    gf.push_back(2.0 * T * N * K * count * inner / Seconds(t0, Clock::now()) / 1e9);
  }
  g_sink = out[0];
  return Median(gf);
}

std::vector<int> ParseInts(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  r1::kernels::RestartWithRuntimeSettings(argv);  // the same OpenMP spin and OpenBLAS core as r1
  bool json = false;
  int reps = 7;
  std::string only;
  std::vector<int> threads;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--threads" && i + 1 < argc) {
      threads = ParseInts(argv[++i]);
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else {
      std::fprintf(stderr, "usage: bench_kernels [--json] [--reps N] [--threads 1,2] [--only gemv|matmul|bf16|bw]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  const int max_threads = omp_get_max_threads();
  if (threads.empty()) {
    threads.push_back(1);
    if (max_threads > 1) threads.push_back(max_threads);
  }

  nlohmann::json report;
  report["reps"] = reps;
  std::vector<double> bw(threads.size());
  for (size_t i = 0; i < threads.size(); ++i) {
    bw[i] = MeasureBandwidth(threads[i], reps);
    report["bandwidth"].push_back({{"threads", threads[i]}, {"gbs", bw[i]}});
  }
  if (!json) {
    std::printf("streaming read, 1 GiB:");
    for (size_t i = 0; i < threads.size(); ++i) std::printf("  %d thr %.1f GB/s", threads[i], bw[i]);
    std::printf("\n");
  }

  if (only.empty() || only == "gemv") {
    if (!json) std::printf("\n%-8s %6s %6s %4s %9s %8s\n", "GEMV", "N", "K", "thr", "GB/s", "of bw");
    const std::pair<int64_t, int64_t> shapes[] = {{4096, 4096}, {2048, 7168}};
    for (auto [N, K] : shapes)
      for (DType dt : {DType::kF32, DType::kBF16, DType::kF8E4M3}) {
        MatrixPool pool(dt, N, K, size_t{768} << 20);
        for (size_t i = 0; i < threads.size(); ++i) {
          const GemvResult r = MeasureGemv(pool, threads[i], reps, bw[i]);
          report["gemv"].push_back({{"dtype", r.dtype}, {"N", r.N}, {"K", r.K}, {"threads", r.threads},
                                    {"gbs", r.gbs}, {"fraction_of_bandwidth", r.frac}});
          if (!json)
            std::printf("%-8s %6lld %6lld %4d %9.2f %7.0f%%\n", r.dtype.c_str(),
                        static_cast<long long>(N), static_cast<long long>(K), r.threads, r.gbs,
                        100 * r.frac);
        }
      }
  }

  if (only.empty() || only == "matmul") {
    if (!json) std::printf("\n%-8s %4s %6s %6s %4s %9s\n", "MatMul", "T", "N", "K", "thr", "GFLOP/s");
    for (DType dt : {DType::kF32, DType::kBF16, DType::kF8E4M3})
      for (int t : threads) {
        const MatMulResult r = MeasureMatMul(dt, 64, 4096, 4096, t, std::max(3, reps / 2));
        report["matmul"].push_back({{"dtype", r.dtype}, {"T", r.T}, {"N", r.N}, {"K", r.K},
                                    {"threads", r.threads}, {"gflops", r.gflops}});
        if (!json)
          std::printf("%-8s %4lld %6lld %6lld %4d %9.1f\n", r.dtype.c_str(), static_cast<long long>(r.T),
                      static_cast<long long>(r.N), static_cast<long long>(r.K), r.threads, r.gflops);
      }
  }
  if (only.empty() || only == "bf16") {
    using r1::kernels::Bf16Engine;
    std::vector<Bf16Engine> engines = {Bf16Engine::kVector};
    if (r1::kernels::AmxAvailable()) engines.push_back(Bf16Engine::kAmx);
    if (!json)
      std::printf("\nbf16 by packed weights, 1 thread (GFLOP/s)\n%-12s %4s %6s %6s %8s %9s\n", "engine", "T", "N", "K",
                  "weights", "GFLOP/s");
    omp_set_num_threads(1);
    for (Bf16Engine e : engines) {
      const r1::kernels::ScopedBf16Engine scope(e);
      for (int count : {1, 48})
        for (int64_t T : {16, 32, 64, 256}) {
          const double gf = MeasurePackedBf16(T, 256, 256, count, reps);
          const char* name = r1::kernels::Bf16EngineName(e);
          report["bf16_packed"].push_back(
              {{"engine", name}, {"T", T}, {"N", 256}, {"K", 256}, {"weights", count}, {"threads", 1}, {"gflops", gf}});
          if (!json)
            std::printf("%-12s %4lld %6d %6d %8d %9.1f\n", name, static_cast<long long>(T), 256, 256, count, gf);
        }
    }
  }
  if (json) std::printf("%s\n", report.dump(2).c_str());
  return 0;
}
