// Scalar references for attention.h, in any floating type (double for gradient checks).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/attention.h"

namespace r1::kernels::ref {

template <typename F>
void AttentionNaive(const F* q, const F* k, const F* v, int64_t T, int64_t S, int64_t H,
                    int64_t Dk, int64_t Dv, double scale, const AttentionMask& mask, F* out) {
  std::vector<double> sc(static_cast<size_t>(S));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t s = 0; s < S; ++s) {
        if (!mask.Visible(t, s)) {
          sc[s] = -std::numeric_limits<double>::infinity();
          continue;
        }
        double d = 0;
        for (int64_t j = 0; j < Dk; ++j)
          d += static_cast<double>(q[(t * H + h) * Dk + j]) * k[(s * H + h) * Dk + j];
        sc[s] = d * scale;
        mx = sc[s] > mx ? sc[s] : mx;
      }
      double sum = 0;
      for (int64_t s = 0; s < S; ++s) sum += (sc[s] = std::isinf(sc[s]) ? 0.0 : std::exp(sc[s] - mx));
      if (sum == 0) sum = 1;  // no visible key: output 0, as the fast kernel
      for (int64_t j = 0; j < Dv; ++j) {
        double o = 0;
        for (int64_t s = 0; s < S; ++s) o += sc[s] / sum * v[(s * H + h) * Dv + j];
        out[(t * H + h) * Dv + j] = static_cast<F>(o);
      }
    }
}

// Backward of AttentionNaive recomputing the probabilities in double; assigns dq, dk, dv.
template <typename F>
void AttentionNaiveBackward(const F* q, const F* k, const F* v, const F* dout, int64_t T, int64_t S, int64_t H,
                            int64_t Dk, int64_t Dv, double scale, const AttentionMask& mask, F* dq, F* dk, F* dv) {
  for (int64_t i = 0; i < T * H * Dk; ++i) dq[i] = 0;
  for (int64_t i = 0; i < S * H * Dk; ++i) dk[i] = 0;
  for (int64_t i = 0; i < S * H * Dv; ++i) dv[i] = 0;
  std::vector<double> p(static_cast<size_t>(S)), dp(static_cast<size_t>(S));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t s = 0; s < S; ++s) {
        if (!mask.Visible(t, s)) {
          p[s] = -std::numeric_limits<double>::infinity();
          continue;
        }
        double d = 0;
        for (int64_t j = 0; j < Dk; ++j) d += static_cast<double>(q[(t * H + h) * Dk + j]) * k[(s * H + h) * Dk + j];
        p[s] = d * scale;
        mx = p[s] > mx ? p[s] : mx;
      }
      double sum = 0;
      for (int64_t s = 0; s < S; ++s) sum += (p[s] = std::isinf(p[s]) ? 0.0 : std::exp(p[s] - mx));
      for (int64_t s = 0; s < S; ++s) p[s] /= sum;
      double rowdot = 0;
      for (int64_t s = 0; s < S; ++s) {
        double d = 0;
        for (int64_t j = 0; j < Dv; ++j) d += static_cast<double>(dout[(t * H + h) * Dv + j]) * v[(s * H + h) * Dv + j];
        dp[s] = d;
        rowdot += d * p[s];
        for (int64_t j = 0; j < Dv; ++j) dv[(s * H + h) * Dv + j] += static_cast<F>(p[s] * dout[(t * H + h) * Dv + j]);
      }
      for (int64_t s = 0; s < S; ++s) {
        const double ds = p[s] * (dp[s] - rowdot) * scale;
        for (int64_t j = 0; j < Dk; ++j) {
          dq[(t * H + h) * Dk + j] += static_cast<F>(ds * k[(s * H + h) * Dk + j]);
          dk[(s * H + h) * Dk + j] += static_cast<F>(ds * q[(t * H + h) * Dk + j]);
        }
      }
    }
}

template <typename F>
void AttentionLatent(const F* q_lat, const F* q_pe, const F* c, const F* kpe, int64_t T, int64_t S,
                     int64_t H, int64_t R, int64_t Dr, double scale, const AttentionMask& mask,
                     F* o_lat) {
  std::vector<double> sc(static_cast<size_t>(S));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t s = 0; s < S; ++s) {
        if (!mask.Visible(t, s)) {
          sc[s] = -std::numeric_limits<double>::infinity();
          continue;
        }
        double d = 0;
        for (int64_t j = 0; j < R; ++j) d += static_cast<double>(q_lat[(t * H + h) * R + j]) * c[s * R + j];
        for (int64_t j = 0; j < Dr; ++j) d += static_cast<double>(q_pe[(t * H + h) * Dr + j]) * kpe[s * Dr + j];
        sc[s] = d * scale;
        mx = sc[s] > mx ? sc[s] : mx;
      }
      double sum = 0;
      for (int64_t s = 0; s < S; ++s) sum += (sc[s] = std::isinf(sc[s]) ? 0.0 : std::exp(sc[s] - mx));
      if (sum == 0) sum = 1;  // no visible key: output 0, as the fast kernel
      for (int64_t j = 0; j < R; ++j) {
        double o = 0;
        for (int64_t s = 0; s < S; ++s) o += sc[s] / sum * c[s * R + j];
        o_lat[(t * H + h) * R + j] = static_cast<F>(o);
      }
    }
}

}  // namespace r1::kernels::ref
