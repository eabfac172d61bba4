#include "kernels/bandwidth.h"

#include <algorithm>
#include <vector>

#include "core/log.h"
#include "kernels/simd.h"

namespace r1::kernels {

double MeasureReadBandwidth(size_t bytes, int reps) {
  const size_t n = (bytes / sizeof(float)) / 64 * 64;
  std::vector<float> buf(n);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = static_cast<float>(i & 1023);  // touch every page
  std::vector<double> gbps;
  volatile float sink = 0.0f;
  for (int r = 0; r < std::max(reps, 1); ++r) {
    Timer t;
    float total = 0.0f;
    // Four independent vector accumulators per thread, so the loop is bound by loads alone.
#pragma omp parallel reduction(+ : total)
    {
#if defined(__AVX512F__)
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
#pragma omp for schedule(static) nowait
      for (size_t i = 0; i < n / 64; ++i) {
        const float* p = buf.data() + i * 64;
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + 48));
      }
      alignas(64) float lanes[16];
      _mm512_store_ps(lanes, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
      for (float l : lanes) total += l;
#else
      float a[8] = {0};
#pragma omp for schedule(static) nowait
      for (size_t i = 0; i < n / 8; ++i)
        for (int j = 0; j < 8; ++j) a[j] += buf[i * 8 + j];
      for (float l : a) total += l;
#endif
    }
    const double sec = t.Seconds();
    sink = sink + total;
    gbps.push_back(static_cast<double>(n * sizeof(float)) / sec / 1e9);
  }
  std::sort(gbps.begin(), gbps.end());
  return gbps[gbps.size() / 2];
}

}  // namespace r1::kernels
