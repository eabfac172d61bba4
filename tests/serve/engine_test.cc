// The continuous-batching engine against single-sequence generation: many concurrent requests of
// different lengths, greedy and seeded sampling, more requests than slots — every request's tokens
// equal Generate() run alone with the same seed, bit for bit. Also: cancellation frees the slot,
// the queue limit, request validation.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "core/rng.h"
#include "infer/engine.h"
#include "infer/generate.h"
#include "kernels/matmul.h"

namespace r1 {
namespace {

const std::string kFixtures = std::string(R1_SOURCE_DIR) + "/tests/fixtures/";

std::unique_ptr<DeepSeekV3> LoadModel(const std::string& name) {
  auto m = DeepSeekV3::Load(kFixtures + name);
  R1_CHECK(m.ok()) << m.status().ToString();
  return std::move(m).value();
}

struct Outcome {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;  // a changed bit in any logit shows here
  FinishReason finish = FinishReason::kNone;
};

// Pops events until every index in [0, n) has finished (bounded by `timeout_ms` overall).
std::vector<Outcome> Collect(EventQueue& q, int n, int timeout_ms = 60000) {
  std::vector<Outcome> out(static_cast<size_t>(n));
  int done = 0;
  for (int waited = 0; done < n && waited < timeout_ms; waited += 50)
    for (EngineEvent& e : q.Pop(50)) {
      Outcome& o = out[static_cast<size_t>(e.index)];
      o.tokens.insert(o.tokens.end(), e.tokens.begin(), e.tokens.end());
      o.logprobs.insert(o.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
      if (e.finish != FinishReason::kNone) {
        EXPECT_EQ(o.finish, FinishReason::kNone) << "request " << e.index << " finished twice";
        o.finish = e.finish;
        ++done;
      }
    }
  EXPECT_EQ(done, n) << "requests did not finish in time";
  return out;
}

struct Case {
  std::vector<int32_t> prompt;
  int64_t max_new;
  SamplingParams sp;
};

std::vector<Case> MakeCases(int n, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<Case> cases;
  for (int i = 0; i < n; ++i) {
    Case c;
    const int64_t P = 1 + static_cast<int64_t>(rng.Below(12));
    for (int64_t t = 0; t < P; ++t) c.prompt.push_back(static_cast<int32_t>(rng.Below(vocab)));
    c.max_new = 4 + static_cast<int64_t>(rng.Below(20));
    if (i % 3 != 0) c.sp = SamplingParams{0.8f + 0.1f * (i % 4), i % 2 ? 0.9f : 1.0f, i % 5 == 0 ? 8 : 0,
                                          1000u + static_cast<uint64_t>(i)};
    cases.push_back(c);
  }
  return cases;
}

// Generate() alone: stop ids are kept in its output, the engine reports them as a finish.
Outcome Alone(const DeepSeekV3& m, const Case& c, const std::vector<int32_t>& stop) {
  GenerateOptions o;
  o.max_new_tokens = c.max_new;
  o.sampling = c.sp;
  o.stop_ids = stop;
  auto r = Generate(m, c.prompt, o);
  R1_CHECK(r.ok()) << r.status().ToString();
  Outcome out;
  out.tokens = r->ids;
  out.logprobs = r->logprobs;
  out.finish = r->stopped ? FinishReason::kStop : FinishReason::kLength;
  if (r->stopped) {
    out.tokens.pop_back();
    out.logprobs.pop_back();
  }
  return out;
}

class EngineTest : public ::testing::TestWithParam<std::string> {};

// Submits `n` requests at once to an engine with `max_batch` slots and checks every request's
// tokens and log-probabilities against Generate() alone, bit for bit. Returns the engine's stats.
EngineStats CheckConcurrentEqualsAlone(const DeepSeekV3& model, int n, int64_t max_batch, uint64_t seed) {
  const int64_t V = model.config().vocab_size;
  const std::vector<int32_t> stop = {3, 7};  // frequent enough to end some requests early
  const std::vector<Case> cases = MakeCases(n, V, seed);
  EngineOptions eo;
  eo.max_batch = max_batch;
  eo.ctx = model.config().max_position_embeddings;
  Engine engine(model, eo);
  auto q = std::make_shared<EventQueue>();
  for (size_t i = 0; i < cases.size(); ++i) {
    EngineRequest r;
    r.prompt = cases[i].prompt;
    r.max_new_tokens = cases[i].max_new;
    r.sampling = cases[i].sp;
    r.stop_ids = stop;
    r.events = q;
    r.index = static_cast<int>(i);
    R1_CHECK(engine.Submit(std::move(r)).ok());
  }
  const std::vector<Outcome> got = Collect(*q, static_cast<int>(cases.size()));
  int stopped = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Outcome want = Alone(model, cases[i], stop);
    EXPECT_EQ(got[i].tokens, want.tokens) << "request " << i;
    EXPECT_EQ(got[i].logprobs.size(), want.logprobs.size()) << "request " << i;
    // memcmp must not see the null data() of empty vectors
    if (got[i].logprobs.size() == want.logprobs.size() && !want.logprobs.empty()) {
      EXPECT_EQ(std::memcmp(got[i].logprobs.data(), want.logprobs.data(), want.logprobs.size() * sizeof(float)), 0)
          << "request " << i << ": log-probabilities differ in their bits";
    }
    EXPECT_EQ(got[i].finish, want.finish) << "request " << i;
    stopped += want.finish == FinishReason::kStop;
  }
  const EngineStats st = engine.Stats();
  EXPECT_EQ(st.requests_finished, n);
  EXPECT_GT(st.decode_steps, 0);
  EXPECT_EQ(st.active, 0);
  EXPECT_EQ(st.kv_tokens, 0);
  EXPECT_GE(stopped, 1);  // stop ids were exercised
  // The counters already hold the step that made each request's last token when its finish
  // event arrives: every sampled token but the prefill's first came from a decode step.
  int64_t decoded = 0;
  for (const Outcome& o : got)
    decoded += static_cast<int64_t>(o.tokens.size()) + (o.finish == FinishReason::kStop) - 1;
  EXPECT_EQ(st.generated_tokens, decoded);
  // Every decode step streams at least the LM head.
  EXPECT_GE(st.decode_bytes, static_cast<uint64_t>(st.decode_steps) * model.weights().lm_head.nbytes());
  return st;
}

TEST_P(EngineTest, ConcurrentEqualsAlone) {
  auto model = LoadModel(GetParam());
  // Fewer slots than requests: some wait and join a running batch.
  const EngineStats st = CheckConcurrentEqualsAlone(*model, 20, 6, 42);
  EXPECT_GT(st.generated_tokens, 3 * st.decode_steps);  // steps really were batched
}

// More sequences in a step than the batched GEMV takes at once (kMaxBatchGemv): still each
// request's own tokens.
TEST_P(EngineTest, WideBatchEqualsAlone) {
  auto model = LoadModel(GetParam());
  const int n = static_cast<int>(kernels::kMaxBatchGemv) + 8;
  const EngineStats st = CheckConcurrentEqualsAlone(*model, n, n, 7);
  // Wide steps happened: all requests are queued before the first few are even prefilled, so the
  // batch fills up early (a mean-width check failed under load, when requests finished while
  // others were still being admitted).
  EXPECT_GT(st.widest_step, kernels::kMaxBatchGemv);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineTest,
                         ::testing::Values("tiny-fp8", "tiny-bf16-direct-q", "tiny-f32-qlora"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s) if (ch == '-') ch = '_';
                           return s;
                         });

// The premise of the engine: one DecodeBatch step over B sequences at different positions gives
// each row the logits of Decode on that sequence alone, bit for bit.
TEST_P(EngineTest, DecodeBatchRowsEqualDecodeAlone) {
  auto model = LoadModel(GetParam());
  const int64_t V = model->config().vocab_size, B = 9;
  Rng rng(5);
  std::vector<LatentCache> batch, alone;
  std::vector<int32_t> next(B);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int32_t> prompt(static_cast<size_t>(1 + b % 5 + b));
    for (auto& t : prompt) t = static_cast<int32_t>(rng.Below(V));
    for (auto* v : {&batch, &alone}) {
      v->push_back(model->NewCache(48));
      std::vector<float> logits(prompt.size() * V);
      model->Forward(prompt.data(), static_cast<int64_t>(prompt.size()), logits.data(), &v->back());
    }
    next[b] = static_cast<int32_t>(rng.Below(V));
  }
  for (int step = 0; step < 3; ++step) {
    std::vector<LatentCache*> ptrs;
    for (auto& c : batch) ptrs.push_back(&c);
    std::vector<float> lb(B * V), la(V);
    ASSERT_TRUE(model->DecodeBatch(next.data(), B, ptrs.data(), lb.data()).ok());
    for (int64_t b = 0; b < B; ++b) {
      ASSERT_TRUE(model->Decode(&next[b], 1, &alone[b], la.data()).ok());
      ASSERT_EQ(std::memcmp(la.data(), lb.data() + b * V, V * sizeof(float)), 0)
          << "step " << step << " sequence " << b;
      next[b] = static_cast<int32_t>((next[b] * 31 + 7) % V);
    }
  }
}

TEST(Engine, CancelFreesSlot) {
  auto model = LoadModel("tiny-fp8");
  EngineOptions eo;
  eo.max_batch = 1;
  eo.ctx = 64;
  Engine engine(*model, eo);
  // The tiny model decodes the 60 tokens in milliseconds, so on a loaded machine the request can
  // finish before the cancel reaches it; such a round proves nothing and is tried again.
  int64_t cancelled = 0;
  for (int round = 0; round < 10 && cancelled == 0; ++round) {
    auto q1 = std::make_shared<EventQueue>();
    EngineRequest r;
    r.prompt = {5, 6, 7};
    r.max_new_tokens = 60;
    r.events = q1;
    auto h = engine.Submit(r);
    ASSERT_TRUE(h.ok());
    // A second request waits for the only slot.
    auto q2 = std::make_shared<EventQueue>();
    r.events = q2;
    r.max_new_tokens = 3;
    ASSERT_TRUE(engine.Submit(r).ok());
    // Wait for the first tokens, then hang up.
    bool got_token = false;
    FinishReason first = FinishReason::kNone;
    for (int i = 0; i < 200 && !got_token; ++i)
      for (const EngineEvent& e : q1->Pop(50)) {
        got_token |= !e.tokens.empty();
        if (e.finish != FinishReason::kNone) first = e.finish;
      }
    ASSERT_TRUE(got_token);
    (*h)->Cancel();
    if (first == FinishReason::kNone) first = Collect(*q1, 1)[0].finish;
    EXPECT_TRUE(first == FinishReason::kCancelled || first == FinishReason::kLength);
    if (first == FinishReason::kCancelled) ++cancelled;
    // Either way the slot is free again and the second request runs to its length.
    const Outcome second = Collect(*q2, 1)[0];
    EXPECT_EQ(second.finish, FinishReason::kLength);
    EXPECT_EQ(second.tokens.size(), 3u);
  }
  EXPECT_EQ(cancelled, 1) << "no round cancelled the request while it ran";
  EXPECT_EQ(engine.Stats().requests_cancelled, cancelled);
}

TEST(Engine, QueueLimitAndValidation) {
  auto model = LoadModel("tiny-fp8");
  EngineOptions eo;
  eo.max_batch = 1;
  eo.ctx = 32;
  eo.max_queue = 2;
  Engine engine(*model, eo);
  auto q = std::make_shared<EventQueue>();
  EngineRequest r;
  r.prompt = {1, 2};
  r.max_new_tokens = 4;
  r.events = q;
  bool full = false;
  // Bad requests: empty prompt, id outside the vocabulary, prompt + max_new over ctx.
  r.prompt = {};
  EXPECT_EQ(engine.Submit(r, &full).status().code(), StatusCode::kInvalidArgument);
  r.prompt = {1, 1000};
  EXPECT_EQ(engine.Submit(r, &full).status().code(), StatusCode::kInvalidArgument);
  r.prompt = std::vector<int32_t>(30, 1);
  EXPECT_EQ(engine.Submit(r, &full).status().code(), StatusCode::kOutOfRange);
  EXPECT_FALSE(full);
  r.prompt = std::vector<int32_t>(32, 1);
  EXPECT_EQ(engine.Submit(r, &full).status().code(), StatusCode::kOutOfRange);
  // Fill the slot and the queue (requests long enough to still be running), then overflow.
  r.prompt = {1, 2};
  r.max_new_tokens = 30;
  std::vector<std::shared_ptr<RequestHandle>> hs;
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 8; ++i) {
    r.index = i;
    auto h = engine.Submit(r, &full);
    if (h.ok()) {
      hs.push_back(*h);
      ++accepted;
    } else {
      EXPECT_TRUE(full);
      ++rejected;
    }
  }
  EXPECT_GE(rejected, 1);
  EXPECT_LE(accepted, 3);  // one slot + two waiting
  for (auto& h : hs) h->Cancel();
}

// --max-queue 0: a request is taken only when a slot is free.
TEST(Engine, NoQueue) {
  auto model = LoadModel("tiny-fp8");
  EngineOptions eo;
  eo.max_batch = 1;
  eo.ctx = 64;
  eo.max_queue = 0;
  Engine engine(*model, eo);
  auto q = std::make_shared<EventQueue>();
  EngineRequest r;
  r.prompt = {1, 2};
  r.max_new_tokens = 60;
  r.events = q;
  bool full = false;
  auto first = engine.Submit(r, &full);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(engine.Submit(r, &full).ok());
  EXPECT_TRUE(full);
  (*first)->Cancel();
  Collect(*q, 1);
  EXPECT_TRUE(engine.Submit(r, &full).ok());
  Collect(*q, 1);
}

}  // namespace
}  // namespace r1
