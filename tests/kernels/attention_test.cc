// AttentionNaive / AttentionLatent against the double references (attention_ref.h) under causal,
// offset (decode after a prefix) and document masks, and the MLA absorption identity of spec §3.3.
//
// Tolerance: outputs are convex combinations of value rows, so errors are measured against the
// largest |v|: f32 scores/softmax/GEMMs vs double give ~1e-6 of that; we allow 1e-5.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kernels/attention.h"
#include "kernels/attention_ref.h"
#include "test_util.h"

namespace r1::kernels {
namespace {

using testing::ExpectClose;
using testing::RandomVec;

double MaxAbs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

struct MaskCase {
  const char* name;
  std::vector<int32_t> q_pos, k_pos, q_doc, k_doc;  // empty k_pos / docs = null
  AttentionMask mask() const {
    return AttentionMask{q_pos.data(), k_pos.empty() ? nullptr : k_pos.data(),
                         q_doc.empty() ? nullptr : q_doc.data(),
                         k_doc.empty() ? nullptr : k_doc.data()};
  }
};

// Query/key sets: T queries over S keys.
std::vector<MaskCase> Cases(int64_t T, int64_t S) {
  std::vector<MaskCase> cases;
  MaskCase causal{"causal_from_0", {}, {}, {}, {}};  // prefill of S tokens, T = S
  for (int32_t t = 0; t < S; ++t) causal.q_pos.push_back(t);
  cases.push_back(causal);
  MaskCase offset{"offset", {}, {}, {}, {}};  // the last T of S positions: decode after a prefix
  for (int32_t t = 0; t < T; ++t) offset.q_pos.push_back(static_cast<int32_t>(S - T + t));
  cases.push_back(offset);
  // Packed documents [0,0,0,1,1,1,1,2,...] with global positions (k_pos null).
  MaskCase docs{"documents", {}, {}, {}, {}};
  for (int32_t t = 0; t < S; ++t) {
    docs.q_pos.push_back(t);
    docs.q_doc.push_back(t < 3 ? 0 : t < 7 ? 1 : 2);
  }
  docs.k_doc = docs.q_doc;
  cases.push_back(docs);
  // Same documents with positions restarting per document (explicit k_pos).
  MaskCase docs_local = docs;
  docs_local.name = "documents_local_pos";
  for (int32_t t = 0; t < S; ++t) docs_local.q_pos[t] = t < 3 ? t : t < 7 ? t - 3 : t - 7;
  docs_local.k_pos = docs_local.q_pos;
  cases.push_back(docs_local);
  // Two interleaved documents: each query sees every other key, a span with holes.
  MaskCase interleaved{"interleaved_documents", {}, {}, {}, {}};
  for (int32_t t = 0; t < S; ++t) {
    interleaved.q_pos.push_back(t);
    interleaved.q_doc.push_back(t % 2);
  }
  interleaved.k_doc = interleaved.q_doc;
  cases.push_back(interleaved);
  return cases;
}

void CheckNaive(int64_t T_decode, int64_t S, uint64_t seed, int64_t Dk = 24, int64_t Dv = 16) {
  Rng rng(seed);
  const int64_t H = 3;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dk));
  for (const MaskCase& mc : Cases(T_decode, S)) {
    const int64_t T = static_cast<int64_t>(mc.q_pos.size());
    const auto q = RandomVec(rng, T * H * Dk), k = RandomVec(rng, S * H * Dk), v = RandomVec(rng, S * H * Dv);
    std::vector<double> qd = testing::ToDouble(q), kd = testing::ToDouble(k), vd = testing::ToDouble(v);
    std::vector<double> ref(T * H * Dv);
    ref::AttentionNaive<double>(qd.data(), kd.data(), vd.data(), T, S, H, Dk, Dv, scale, mc.mask(), ref.data());
    std::vector<float> out(T * H * Dv), probs(H * T * S);
    AttentionNaive(q.data(), k.data(), v.data(), T, S, H, Dk, Dv, scale, mc.mask(), out.data(), probs.data());
    ExpectClose(out.data(), ref.data(), nullptr, T * H * Dv, 0.0, 1e-5 * MaxAbs(v),
                std::string("AttentionNaive ") + mc.name);
    // Saved probabilities: rows sum to 1, masked entries are exactly 0.
    const AttentionMask m = mc.mask();
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        double sum = 0;
        for (int64_t s = 0; s < S; ++s) {
          const float p = probs[(h * T + t) * S + s];
          if (!m.Visible(t, s)) {
            EXPECT_EQ(p, 0.0f);
          }
          sum += p;
        }
        EXPECT_NEAR(sum, 1.0, 1e-5) << mc.name;
      }
    // Without probs the output is the same.
    std::vector<float> out2(T * H * Dv);
    AttentionNaive(q.data(), k.data(), v.data(), T, S, H, Dk, Dv, scale, mc.mask(), out2.data());
    EXPECT_EQ(out, out2);
  }
}

TEST(Attention, NaiveMatchesReference) { CheckNaive(4, 11, 6); }

// Past one 64-row block: each block's GEMMs span only the keys its rows see.
TEST(Attention, NaiveRowBlocksMatchReference) { CheckNaive(70, 150, 7); }

// Head widths that are multiples of 16 take the 16-lane tiles (with AVX-512): 4-row tiles, a last
// tile of fewer rows, spans that start and end inside a vector, more than 64 keys at once.
TEST(Attention, NaiveTilesMatchReference) {
  CheckNaive(4, 11, 8, 48, 32);
  CheckNaive(70, 150, 9, 48, 32);
  CheckNaive(23, 37, 10, 16, 80);
}

// Widths the BLAS path takes (R = 32, Dr = 8) and ones the 16-lane kernel takes, with a last block
// of fewer than 4 heads and of fewer than 64 latent columns (H = 5, R = 80).
TEST(Attention, LatentMatchesReference) {
  Rng rng(8);
  const int64_t S = 11;
  const float scale = 0.13523378f;
  struct Shape {
    int64_t H, R, Dr;
  };
  for (const Shape& sh : {Shape{4, 32, 8}, Shape{5, 80, 16}})
    for (const MaskCase& mc : Cases(3, S)) {
      const int64_t H = sh.H, R = sh.R, Dr = sh.Dr;
      const int64_t T = static_cast<int64_t>(mc.q_pos.size());
      const auto q_lat = RandomVec(rng, T * H * R, 0.3), q_pe = RandomVec(rng, T * H * Dr);
      const auto c = RandomVec(rng, S * R), kpe = RandomVec(rng, S * Dr);
      std::vector<double> a = testing::ToDouble(q_lat), b = testing::ToDouble(q_pe), cd = testing::ToDouble(c),
                          kd = testing::ToDouble(kpe), ref(T * H * R);
      ref::AttentionLatent<double>(a.data(), b.data(), cd.data(), kd.data(), T, S, H, R, Dr, scale, mc.mask(),
                                   ref.data());
      std::vector<float> o(T * H * R);
      AttentionLatent(q_lat.data(), q_pe.data(), c.data(), kpe.data(), T, S, H, R, Dr, scale, mc.mask(), o.data());
      ExpectClose(o.data(), ref.data(), nullptr, T * H * R, 0.0, 1e-5 * MaxAbs(c),
                  std::string("AttentionLatent ") + mc.name + ", R " + std::to_string(R));
    }
}

// One query token (a decode step) at the widths of the released model's cache (R = 512, Dr = 64),
// of the GRPO benchmark's (64, 16) and odd ones, against keys it sees all of, all but later
// positions, or every other one.
TEST(Attention, LatentOneQueryMatchesReference) {
  Rng rng(12);
  struct Shape {
    int64_t S, H, R, Dr;
  };
  for (const Shape& sh : {Shape{75, 4, 64, 16}, Shape{9, 3, 24, 8}, Shape{33, 2, 512, 64}, Shape{1, 4, 64, 16}}) {
    const int64_t S = sh.S, H = sh.H, R = sh.R, Dr = sh.Dr;
    const float scale = 0.1f;
    std::vector<int32_t> k_doc(static_cast<size_t>(S)), q_doc = {0};
    for (int64_t s = 0; s < S; ++s) k_doc[static_cast<size_t>(s)] = static_cast<int32_t>(s % 2);
    const std::vector<int32_t> last = {static_cast<int32_t>(S - 1)}, middle = {static_cast<int32_t>(S / 2)};
    const AttentionMask masks[] = {{last.data(), nullptr, nullptr, nullptr},
                                   {middle.data(), nullptr, nullptr, nullptr},
                                   {last.data(), nullptr, q_doc.data(), k_doc.data()}};
    for (const AttentionMask& mask : masks) {
      const auto q_lat = RandomVec(rng, H * R, 0.3), q_pe = RandomVec(rng, H * Dr);
      const auto c = RandomVec(rng, S * R), kpe = RandomVec(rng, S * Dr);
      std::vector<double> a = testing::ToDouble(q_lat), b = testing::ToDouble(q_pe), cd = testing::ToDouble(c),
                          kd = testing::ToDouble(kpe), ref(H * R);
      ref::AttentionLatent<double>(a.data(), b.data(), cd.data(), kd.data(), 1, S, H, R, Dr, scale, mask, ref.data());
      std::vector<float> o(H * R);
      AttentionLatent(q_lat.data(), q_pe.data(), c.data(), kpe.data(), 1, S, H, R, Dr, scale, mask, o.data());
      ExpectClose(o.data(), ref.data(), nullptr, H * R, 0.0, 1e-5 * MaxAbs(c),
                  "AttentionLatent one query, S " + std::to_string(S) + ", R " + std::to_string(R));
    }
  }
}

// Spec §3.3: with q_lat[h] = W_UK[h]ᵀ·q_nope[h] and o[h] = W_UV[h]·o_lat[h], the absorbed form
// equals naive attention with k = [W_UK[h]·c ; kpe], v = W_UV[h]·c, q = [q_nope ; q_pe].
TEST(Attention, AbsorbedEqualsNaive) {
  Rng rng(10);
  const int64_t T = 3, S = 9, H = 2, Dn = 16, Dr = 8, Dv = 12, R = 24, Dk = Dn + Dr;
  const float scale = 0.13523378f;
  const auto w_kvb = RandomVec(rng, H * (Dn + Dv) * R, 0.2);  // [H, Dn+Dv, R], rows: W_UK then W_UV
  const auto c = RandomVec(rng, S * R), kpe = RandomVec(rng, S * Dr);
  const auto q_nope = RandomVec(rng, T * H * Dn), q_pe = RandomVec(rng, T * H * Dr);
  auto W = [&](int64_t h, int64_t j, int64_t r) { return static_cast<double>(w_kvb[(h * (Dn + Dv) + j) * R + r]); };
  std::vector<int32_t> pos = {6, 7, 8};  // decode of 3 tokens after a 6-token prefix
  const AttentionMask mask{pos.data(), nullptr, nullptr, nullptr};

  // Naive inputs, built in double.
  std::vector<double> q(T * H * Dk), k(S * H * Dk), v(S * H * Dv);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t j = 0; j < Dn; ++j) q[(t * H + h) * Dk + j] = q_nope[(t * H + h) * Dn + j];
      for (int64_t j = 0; j < Dr; ++j) q[(t * H + h) * Dk + Dn + j] = q_pe[(t * H + h) * Dr + j];
    }
  for (int64_t s = 0; s < S; ++s)
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t j = 0; j < Dn; ++j) {
        double a = 0;
        for (int64_t r = 0; r < R; ++r) a += W(h, j, r) * c[s * R + r];
        k[(s * H + h) * Dk + j] = a;
      }
      for (int64_t j = 0; j < Dr; ++j) k[(s * H + h) * Dk + Dn + j] = kpe[s * Dr + j];
      for (int64_t j = 0; j < Dv; ++j) {
        double a = 0;
        for (int64_t r = 0; r < R; ++r) a += W(h, Dn + j, r) * c[s * R + r];
        v[(s * H + h) * Dv + j] = a;
      }
    }
  // Absorbed query.
  std::vector<double> q_lat(T * H * R, 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t j = 0; j < Dn; ++j) q_lat[(t * H + h) * R + r] += q_nope[(t * H + h) * Dn + j] * W(h, j, r);
  auto up = [&](const std::vector<double>& o_lat) {  // o[t,h] = W_UV[h]·o_lat[t,h]
    std::vector<double> o(T * H * Dv, 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < Dv; ++j)
          for (int64_t r = 0; r < R; ++r) o[(t * H + h) * Dv + j] += W(h, Dn + j, r) * o_lat[(t * H + h) * R + r];
    return o;
  };

  // In double the two forms agree to rounding.
  std::vector<double> naive(T * H * Dv), o_lat(T * H * R);
  ref::AttentionNaive<double>(q.data(), k.data(), v.data(), T, S, H, Dk, Dv, scale, mask, naive.data());
  std::vector<double> qpd = testing::ToDouble(q_pe), cd = testing::ToDouble(c), kd = testing::ToDouble(kpe);
  ref::AttentionLatent<double>(q_lat.data(), qpd.data(), cd.data(), kd.data(), T, S, H, R, Dr, scale, mask, o_lat.data());
  const std::vector<double> absorbed = up(o_lat);
  for (int64_t i = 0; i < T * H * Dv; ++i) EXPECT_NEAR(absorbed[i], naive[i], 1e-12) << i;

  // And the f32 kernels agree with each other to f32 accuracy.
  auto F = [](const std::vector<double>& d) { return std::vector<float>(d.begin(), d.end()); };
  const auto qf = F(q), kf = F(k), vf = F(v), qlf = F(q_lat);
  std::vector<float> naive_f(T * H * Dv), o_lat_f(T * H * R);
  AttentionNaive(qf.data(), kf.data(), vf.data(), T, S, H, Dk, Dv, scale, mask, naive_f.data());
  AttentionLatent(qlf.data(), q_pe.data(), c.data(), kpe.data(), T, S, H, R, Dr, scale, mask, o_lat_f.data());
  const std::vector<double> absorbed_f = up(testing::ToDouble(o_lat_f));
  std::vector<float> absorbed_ff(absorbed_f.begin(), absorbed_f.end());
  ExpectClose(absorbed_ff.data(), testing::ToDouble(naive_f).data(), nullptr, T * H * Dv, 0.0,
              1e-5 * MaxAbs(vf), "absorbed vs naive (f32 kernels)");
}

// MlaAbsorbQuery against the fused multiply-adds it promises, in r order (q_lat[c] = fma(q[r],
// W_UK[r][c], q_lat[c]) from 0): the same bits, for latent widths with a tail (24, 80), one and
// several 64-column chunks and the released model's 512, with strided queries.
TEST(Attention, AbsorbQueryIsFusedMultiplyAddsInOrder) {
  Rng rng(12);
  for (int64_t R : {24, 64, 80, 512}) {
    const int64_t T = 3, H = 2, Dn = 16, Dv = 8, token_stride = H * (Dn + 5), head_stride = Dn + 5;
    const auto w = RandomVec(rng, H * (Dn + Dv) * R, 0.2);
    const auto q = RandomVec(rng, T * token_stride);
    TensorView view;
    view.data = w.data();
    view.dtype = DType::kF32;
    view.shape = Shape{H * (Dn + Dv), R};
    std::vector<float> got(T * H * R, -1.0f);
    MlaAbsorbQuery(q.data(), token_stride, head_stride, view, T, H, Dn, Dv, got.data());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t c = 0; c < R; ++c) {
          float want = 0.0f;
          for (int64_t r = 0; r < Dn; ++r)
            want = std::fma(q[t * token_stride + h * head_stride + r], w[(h * (Dn + Dv) + r) * R + c], want);
          ASSERT_EQ(got[(t * H + h) * R + c], want) << "R " << R << " t " << t << " h " << h << " c " << c;
        }
  }
}

}  // namespace
}  // namespace r1::kernels
