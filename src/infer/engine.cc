#include "infer/engine.h"

#include <algorithm>
#include <chrono>

#include "core/check.h"
#include "core/log.h"
#include "core/threads.h"
#include "kernels/matmul.h"

namespace r1 {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "none";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "?";
}

void EventQueue::Push(EngineEvent e) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

std::vector<EngineEvent> EventQueue::Pop(int timeout_ms) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty(); });
  std::vector<EngineEvent> out(std::make_move_iterator(events_.begin()),
                               std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

namespace {
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
constexpr double kRateWindow = 5.0;  // seconds of decode steps behind recent_tokens_per_second
}  // namespace

struct Engine::Sequence {
  explicit Sequence(EngineRequest r)
      : req(std::move(r)), handle(std::make_shared<RequestHandle>()), sampler(req.sampling) {}
  EngineRequest req;
  std::shared_ptr<RequestHandle> handle;
  Sampler sampler;
  int64_t slot = -1;
  int64_t generated = 0;
  int32_t last = 0;  // the token to feed at the next step
};

Engine::Engine(const DeepSeekV3& model, const EngineOptions& opts) : model_(model), opts_(opts) {
  R1_CHECK(opts_.max_batch >= 1 && opts_.ctx >= 2 && opts_.max_queue >= 0);
  R1_CHECK_LE(opts_.ctx, model_.config().max_position_embeddings);
  slots_.reserve(static_cast<size_t>(opts_.max_batch));
  for (int64_t i = 0; i < opts_.max_batch; ++i) {
    slots_.push_back(model_.NewCache(opts_.ctx));
    free_slots_.push_back(opts_.max_batch - 1 - i);  // slot 0 is taken first
  }
  stats_.max_batch = opts_.max_batch;
  stats_.kv_capacity = opts_.max_batch * opts_.ctx;
  for (const LatentCache& c : slots_) stats_.kv_bytes += static_cast<int64_t>(c.bytes());
  // OpenMP's thread count is per thread: the scheduler runs the model with the creator's setting
  // (--threads), not the default of all cores.
  const int threads = NumThreads();
  thread_ = std::thread([this, threads] {
    SetNumThreads(threads);
    Loop();
  });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Result<std::shared_ptr<RequestHandle>> Engine::Submit(EngineRequest req, bool* queue_full) {
  if (queue_full) *queue_full = false;
  const int64_t P = static_cast<int64_t>(req.prompt.size());
  const int64_t V = model_.config().vocab_size;
  if (P == 0) return InvalidArgument("the prompt is empty");
  if (!req.events) return InvalidArgument("the request has no event queue");
  for (int32_t id : req.prompt)
    if (id < 0 || id >= V)
      return InvalidArgument("prompt token id " + std::to_string(id) + " is outside the vocabulary (" +
                             std::to_string(V) + ")");
  if (P >= opts_.ctx)
    return OutOfRange("the prompt has " + std::to_string(P) + " tokens; the context holds " +
                      std::to_string(opts_.ctx) + " (prompt + at least one generated token)");
  if (req.max_new_tokens < 1) return InvalidArgument("max_new_tokens must be at least 1");
  if (P + req.max_new_tokens > opts_.ctx)
    return OutOfRange("prompt (" + std::to_string(P) + " tokens) + max_tokens (" +
                      std::to_string(req.max_new_tokens) + ") exceeds the context of " +
                      std::to_string(opts_.ctx));
  auto seq = std::make_unique<Sequence>(std::move(req));
  std::shared_ptr<RequestHandle> handle = seq->handle;
  {
    std::lock_guard<std::mutex> lk(mu_);
    // Waiting requests beyond the free slots count against the queue limit.
    const int64_t waiting = static_cast<int64_t>(queue_.size()) - static_cast<int64_t>(free_slots_.size());
    if (waiting >= opts_.max_queue) {
      ++stats_.requests_rejected;
      if (queue_full) *queue_full = true;
      return OutOfRange("the server is busy: all " + std::to_string(opts_.max_batch) + " slots are taken and " +
                        std::to_string(std::max<int64_t>(waiting, 0)) + " requests are waiting (limit " +
                        std::to_string(opts_.max_queue) + ")");
    }
    ++stats_.requests_submitted;
    queue_.push_back(std::move(seq));
    stats_.queue_depth = static_cast<int64_t>(queue_.size());
  }
  cv_.notify_all();
  return handle;
}

EngineStats Engine::Stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  EngineStats s = stats_;
  const double now = Now();
  int64_t tokens = 0;
  for (const auto& [t, n] : recent_)
    if (now - t <= kRateWindow) tokens += n;
  s.recent_tokens_per_second = tokens / kRateWindow;
  return s;
}

void Engine::Finish(Sequence& s, FinishReason r, Status err) {
  EngineEvent e;
  e.index = s.req.index;
  e.finish = r;
  e.error = std::move(err);
  s.req.events->Push(std::move(e));
  std::lock_guard<std::mutex> lk(mu_);
  if (s.slot >= 0) {
    slots_[static_cast<size_t>(s.slot)].Truncate(0);
    free_slots_.push_back(s.slot);
    s.slot = -1;
  }
  if (r == FinishReason::kCancelled) ++stats_.requests_cancelled;
  else ++stats_.requests_finished;
}

bool Engine::Advance(Sequence& s, const float* logits) {
  if (s.handle->cancelled()) {
    Finish(s, FinishReason::kCancelled);
    return false;
  }
  float logprob = 0;
  const int32_t id = s.sampler.Sample(logits, model_.config().vocab_size, &logprob);
  ++s.generated;
  if (std::find(s.req.stop_ids.begin(), s.req.stop_ids.end(), id) != s.req.stop_ids.end()) {
    Finish(s, FinishReason::kStop);
    return false;
  }
  EngineEvent e;
  e.index = s.req.index;
  e.tokens.push_back(id);
  e.logprobs.push_back(logprob);
  s.req.events->Push(std::move(e));
  if (s.generated >= s.req.max_new_tokens) {
    Finish(s, FinishReason::kLength);
    return false;
  }
  s.last = id;
  return true;
}

bool Engine::Prefill(Sequence& s) {
  const int64_t P = static_cast<int64_t>(s.req.prompt.size()), V = model_.config().vocab_size;
  LatentCache& cache = slots_[static_cast<size_t>(s.slot)];
  cache.Truncate(0);
  std::vector<float> logits(static_cast<size_t>(V));
  Timer timer;
  model_.Forward(s.req.prompt.data(), P, logits.data(), &cache, /*last_only=*/true);
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.prompt_tokens += P;
    stats_.prefill_seconds += timer.Seconds();
  }
  return Advance(s, logits.data());
}

void Engine::Step() {
  const int64_t B = static_cast<int64_t>(active_.size()), V = model_.config().vocab_size;
  std::vector<int32_t> ids(static_cast<size_t>(B));
  std::vector<LatentCache*> caches(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    ids[b] = active_[b]->last;
    caches[b] = &slots_[static_cast<size_t>(active_[b]->slot)];
  }
  std::vector<float> logits(static_cast<size_t>(B * V));
  Timer timer;
  const uint64_t bytes0 = model_.BytesStreamed();
  // In groups of at most kMaxBatchGemv sequences: the batched GEMV gives every row the bits of a
  // one-row product, while a wider product goes to sgemm, whose rounding depends on the batch —
  // and a request's tokens must not depend on its neighbours.
  Status st = Status::Ok();
  for (int64_t g0 = 0; g0 < B && st.ok(); g0 += kernels::kMaxBatchGemv) {
    const int64_t n = std::min(kernels::kMaxBatchGemv, B - g0);
    st = model_.DecodeBatch(ids.data() + g0, n, caches.data() + g0, logits.data() + g0 * V);
  }
  const double sec = timer.Seconds();
  const uint64_t bytes = model_.BytesStreamed() - bytes0;
  {
    // Counted before the tokens go out: a client that has seen its last token then reads
    // counters that include the step that made it.
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.decode_steps;
    stats_.widest_step = std::max(stats_.widest_step, B);
    stats_.decode_seconds += sec;
    stats_.decode_bytes += bytes;
    stats_.generated_tokens += B;
    const double now = Now();
    recent_.emplace_back(now, B);
    while (!recent_.empty() && now - recent_.front().first > kRateWindow) recent_.pop_front();
  }
  std::vector<std::unique_ptr<Sequence>> keep;
  for (int64_t b = 0; b < B; ++b) {
    Sequence& s = *active_[b];
    if (!st.ok()) {
      Finish(s, FinishReason::kError, st);
    } else if (Advance(s, logits.data() + b * V)) {
      keep.push_back(std::move(active_[b]));
    }
  }
  active_ = std::move(keep);
}

void Engine::Loop() {
  for (;;) {
    std::vector<std::unique_ptr<Sequence>> admitted, dropped;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty() || !active_.empty(); });
      if (stop_) break;
      while (!queue_.empty() && (!free_slots_.empty() || queue_.front()->handle->cancelled())) {
        std::unique_ptr<Sequence> s = std::move(queue_.front());
        queue_.pop_front();
        if (s->handle->cancelled()) {
          dropped.push_back(std::move(s));
          continue;
        }
        s->slot = free_slots_.back();
        free_slots_.pop_back();
        admitted.push_back(std::move(s));
      }
      // Requests cancelled while waiting behind a full batch leave the queue too.
      for (auto it = queue_.begin(); it != queue_.end();) {
        if ((*it)->handle->cancelled()) {
          dropped.push_back(std::move(*it));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      stats_.queue_depth = static_cast<int64_t>(queue_.size());
    }
    for (auto& s : dropped) Finish(*s, FinishReason::kCancelled);
    // Running sequences whose client went away free their slots before the step.
    std::vector<std::unique_ptr<Sequence>> keep;
    for (auto& s : active_) {
      if (s->handle->cancelled()) Finish(*s, FinishReason::kCancelled);
      else keep.push_back(std::move(s));
    }
    active_ = std::move(keep);
    for (auto& s : admitted)
      if (Prefill(*s)) active_.push_back(std::move(s));
    if (!active_.empty()) Step();
    std::lock_guard<std::mutex> lk(mu_);
    stats_.active = static_cast<int64_t>(active_.size());
    int64_t kv = 0;
    for (const auto& s : active_) kv += slots_[static_cast<size_t>(s->slot)].length();
    stats_.kv_tokens = kv;
  }
  // Shutting down: everything still held ends as cancelled.
  std::deque<std::unique_ptr<Sequence>> rest;
  {
    std::lock_guard<std::mutex> lk(mu_);
    rest.swap(queue_);
  }
  for (auto& s : rest) Finish(*s, FinishReason::kCancelled);
  for (auto& s : active_) Finish(*s, FinishReason::kCancelled);
  active_.clear();
}

}  // namespace r1
