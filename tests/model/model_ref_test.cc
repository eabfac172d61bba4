// The engine against the PyTorch reference dumps in tests/fixtures (written by
// tools/ref/make_fixtures.py): logits, NLL, greedy continuation, and the absorbed latent-cache
// decode against the naive full forward.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/file.h"
#include "model/deepseek_v3.h"

namespace r1 {
namespace {

using json = nlohmann::json;

struct Fixture {
  std::string dir;
  json expected;
  std::vector<int32_t> ids;
};

Fixture LoadFixture(const std::string& variant) {
  Fixture f;
  f.dir = std::string(R1_SOURCE_DIR) + "/tests/fixtures/" + variant;
  auto text = ReadFileToString(f.dir + "/expected.json");
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  f.expected = json::parse(*text);
  EXPECT_EQ(f.expected["format_version"].get<int>(), 1);
  for (const auto& v : f.expected["ids"]) f.ids.push_back(v.get<int32_t>());
  return f;
}

int32_t Argmax(const float* x, int64_t n) {
  return static_cast<int32_t>(std::max_element(x, x + n) - x);
}

// max_i |a[i] − b[i]| over n floats.
double MaxAbsDiff(const float* a, const float* b, int64_t n) {
  double err = 0;
  for (int64_t i = 0; i < n; ++i) err = std::max(err, static_cast<double>(std::fabs(a[i] - b[i])));
  return err;
}

double MeanNll(const std::vector<float>& logits, const std::vector<int32_t>& ids, int64_t V) {
  double total = 0;
  const int64_t T = static_cast<int64_t>(ids.size());
  for (int64_t t = 0; t + 1 < T; ++t) {
    const float* row = logits.data() + t * V;
    const double m = *std::max_element(row, row + V);
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(row[v] - m);
    total += (m + std::log(s)) - row[ids[t + 1]];
  }
  return total / static_cast<double>(T - 1);
}

class ModelRefTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ModelRefTest, LogitsNllAndGreedyMatchReference) {
  Fixture f = LoadFixture(GetParam());
  for (bool use_mmap : {true, false}) {
    auto model = DeepSeekV3::Load(f.dir, io::LoadOptions{use_mmap});
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    const DeepSeekV3& m = **model;
    const int64_t V = m.config().vocab_size, T = static_cast<int64_t>(f.ids.size());
    std::vector<float> logits(static_cast<size_t>(T * V));
    m.Forward(f.ids.data(), T, logits.data());

    double max_err = 0, max_ref = 0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t v = 0; v < V; ++v) {
        const double ref = f.expected["logits"][t][v].get<double>();
        max_err = std::max(max_err, std::fabs(ref - logits[t * V + v]));
        max_ref = std::max(max_ref, std::fabs(ref));
      }
    std::printf("[ %s ] logits max-abs error %.3g (max |logit| %.3g), mmap=%d\n", GetParam(), max_err, max_ref,
                use_mmap);
    EXPECT_LT(max_err, 1e-4 * std::max(1.0, max_ref));

    const double nll = MeanNll(logits, f.ids, V), ref_nll = f.expected["nll"].get<double>();
    EXPECT_NEAR(nll, ref_nll, 1e-4 * ref_nll) << "NLL";

    // Greedy continuation with a full forward at each step.
    const int64_t P = f.expected["prompt_len"].get<int64_t>();
    std::vector<int32_t> seq(f.ids.begin(), f.ids.begin() + P), greedy;
    for (size_t i = 0; i < f.expected["greedy"].size(); ++i) {
      std::vector<float> lg(seq.size() * static_cast<size_t>(V));
      m.Forward(seq.data(), static_cast<int64_t>(seq.size()), lg.data());
      const int32_t next = Argmax(lg.data() + (seq.size() - 1) * V, V);
      greedy.push_back(next);
      seq.push_back(next);
    }
    EXPECT_EQ(greedy, f.expected["greedy"].get<std::vector<int32_t>>());
  }
}

TEST_P(ModelRefTest, AbsorbedDecodeEqualsNaiveForward) {
  Fixture f = LoadFixture(GetParam());
  auto model = DeepSeekV3::Load(f.dir);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const DeepSeekV3& m = **model;
  const int64_t V = m.config().vocab_size, T = static_cast<int64_t>(f.ids.size());
  std::vector<float> full(static_cast<size_t>(T * V));
  m.Forward(f.ids.data(), T, full.data());

  // Token by token from an empty cache.
  LatentCache cache = m.NewCache(T);
  std::vector<float> step(static_cast<size_t>(V));
  double max_err = 0;
  for (int64_t t = 0; t < T; ++t) {
    ASSERT_TRUE(m.Decode(&f.ids[t], 1, &cache, step.data()).ok());
    max_err = std::max(max_err, MaxAbsDiff(step.data(), full.data() + t * V, V));
  }
  EXPECT_EQ(cache.length(), T);
  EXPECT_LT(max_err, 1e-4) << "absorbed vs naive";

  // Prefill 10 tokens with the naive path filling the cache, then absorbed decode of the rest in
  // one chunk of 6 and single steps.
  LatentCache c2 = m.NewCache(T);
  std::vector<float> pre(static_cast<size_t>(10 * V));
  m.Forward(f.ids.data(), 10, pre.data(), &c2);
  std::vector<float> chunk(static_cast<size_t>(6 * V));
  ASSERT_TRUE(m.Decode(f.ids.data() + 10, 6, &c2, chunk.data()).ok());
  max_err = MaxAbsDiff(chunk.data(), full.data() + 10 * V, 6 * V);
  for (int64_t t = 16; t < T; ++t) {
    ASSERT_TRUE(m.Decode(&f.ids[t], 1, &c2, step.data(), /*last_only=*/true).ok());
    max_err = std::max(max_err, MaxAbsDiff(step.data(), full.data() + t * V, V));
  }
  EXPECT_LT(max_err, 1e-4) << "prefill + chunked absorbed decode vs naive";

  // Prefill for generation computes the last position's logits only; they equal the full forward's
  // last row (up to the rounding of a one-row product against a many-row one).
  std::vector<float> last(static_cast<size_t>(V));
  LatentCache c3 = m.NewCache(T);
  m.Forward(f.ids.data(), T, last.data(), &c3, /*last_only=*/true);
  EXPECT_EQ(c3.length(), T);
  EXPECT_LT(MaxAbsDiff(last.data(), full.data() + (T - 1) * V, V), 1e-5);

  // The cache refuses to grow past its capacity.
  int32_t one = 1;
  EXPECT_EQ(m.Decode(&one, 1, &c2, step.data()).code(), StatusCode::kOutOfRange);
}

TEST_P(ModelRefTest, BatchedDecodeEqualsSingleSequences) {
  Fixture f = LoadFixture(GetParam());
  auto model = DeepSeekV3::Load(f.dir);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const DeepSeekV3& m = **model;
  const int64_t V = m.config().vocab_size;
  // Three sequences at different positions: prompts of 3, 7 and 11 tokens from the fixture ids.
  const std::vector<int64_t> lens = {3, 7, 11};
  std::vector<LatentCache> caches;
  std::vector<std::vector<float>> expected;
  for (int64_t n : lens) {
    caches.push_back(m.NewCache(32));
    std::vector<float> lg(static_cast<size_t>(n * V));
    m.Forward(f.ids.data() + n, n, lg.data(), &caches.back());
    // What a lone sequence produces for its next token (ids[0]).
    LatentCache alone = m.NewCache(32);
    std::vector<float> tmp(static_cast<size_t>(n * V)), next(static_cast<size_t>(V));
    m.Forward(f.ids.data() + n, n, tmp.data(), &alone);
    ASSERT_TRUE(m.Decode(&f.ids[0], 1, &alone, next.data()).ok());
    expected.push_back(next);
  }
  std::vector<LatentCache*> ptrs = {&caches[0], &caches[1], &caches[2]};
  const int32_t ids[3] = {f.ids[0], f.ids[0], f.ids[0]};
  std::vector<float> out(static_cast<size_t>(3 * V));
  ASSERT_TRUE(m.DecodeBatch(ids, 3, ptrs.data(), out.data()).ok());
  for (int b = 0; b < 3; ++b) {
    EXPECT_EQ(caches[b].length(), lens[b] + 1);
    EXPECT_LT(MaxAbsDiff(out.data() + b * V, expected[b].data(), V), 1e-5) << "sequence " << b;
  }
  // The same cache twice is refused.
  std::vector<LatentCache*> dup = {&caches[0], &caches[0]};
  EXPECT_FALSE(m.DecodeBatch(ids, 2, dup.data(), out.data()).ok());
}

// Several prompts prefilled together: each one's last logits and latent cache as Forward on it
// alone gives, and the next decode step from that cache the same; bad input is refused.
TEST_P(ModelRefTest, PrefillEqualsForwardPerPrompt) {
  Fixture f = LoadFixture(GetParam());
  auto model = DeepSeekV3::Load(f.dir);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const DeepSeekV3& m = **model;
  const int64_t V = m.config().vocab_size;
  const std::vector<int64_t> lens = {5, 1, 12};
  std::vector<std::vector<int32_t>> prompts;
  for (size_t i = 0; i < lens.size(); ++i) prompts.emplace_back(f.ids.begin() + i, f.ids.begin() + i + lens[i]);
  std::vector<LatentCache> caches;
  for (int64_t n : lens) caches.push_back(m.NewCache(n + 1));
  std::vector<LatentCache*> ptrs = {&caches[0], &caches[1], &caches[2]};
  std::vector<float> last(static_cast<size_t>(3 * V));
  ASSERT_TRUE(m.Prefill(prompts, ptrs.data(), last.data()).ok());
  for (size_t i = 0; i < lens.size(); ++i) {
    LatentCache alone = m.NewCache(lens[i] + 1);
    std::vector<float> want(static_cast<size_t>(V));
    m.Forward(prompts[i].data(), lens[i], want.data(), &alone, /*last_only=*/true);
    ASSERT_EQ(caches[i].length(), lens[i]);
    EXPECT_LT(MaxAbsDiff(last.data() + i * V, want.data(), V), 1e-5) << "prompt " << i << " logits";
    std::vector<float> a(static_cast<size_t>(V)), b(static_cast<size_t>(V));
    ASSERT_TRUE(m.Decode(&f.ids[0], 1, &caches[i], a.data()).ok());
    ASSERT_TRUE(m.Decode(&f.ids[0], 1, &alone, b.data()).ok());
    EXPECT_LT(MaxAbsDiff(a.data(), b.data(), V), 1e-5) << "prompt " << i << " next step";
  }
  // Refused: a cache that is not empty, the same cache twice, an empty prompt, a prompt over its
  // cache, a token outside the vocabulary.
  std::vector<LatentCache> fresh;
  for (int64_t n : lens) fresh.push_back(m.NewCache(n + 1));
  std::vector<LatentCache*> used = {&caches[0], &fresh[1], &fresh[2]};
  EXPECT_FALSE(m.Prefill(prompts, used.data(), last.data()).ok());
  std::vector<LatentCache*> dup = {&fresh[0], &fresh[0], &fresh[2]};
  EXPECT_FALSE(m.Prefill(prompts, dup.data(), last.data()).ok());
  std::vector<LatentCache*> ok = {&fresh[0], &fresh[1], &fresh[2]};
  std::vector<std::vector<int32_t>> bad = prompts;
  bad[1].clear();
  EXPECT_FALSE(m.Prefill(bad, ok.data(), last.data()).ok());
  bad = prompts;
  bad[0].resize(static_cast<size_t>(lens[0] + 2), f.ids[0]);
  EXPECT_FALSE(m.Prefill(bad, ok.data(), last.data()).ok());
  bad = prompts;
  bad[2][3] = static_cast<int32_t>(V);
  const Status st = m.Prefill(bad, ok.data(), last.data());
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.ToString().find("prompt 2"), std::string::npos) << st.ToString();
  for (const LatentCache& c : fresh) EXPECT_EQ(c.length(), 0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelRefTest,
                         ::testing::Values("tiny-f32-qlora", "tiny-bf16-direct-q", "tiny-fp8", "tiny-plain-rope"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

}  // namespace
}  // namespace r1
