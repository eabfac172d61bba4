// Continuous batching over the latent KV cache: many concurrent generations share every decode
// step.
//
// The engine owns `max_batch` slots, each a LatentCache of `ctx` positions, and one scheduler
// thread. A submitted request waits in a bounded queue until a slot is free; it is then prefilled
// alone (naive attention, DeepSeekV3::Forward filling the slot's cache) and joins the running
// batch, which advances one token per sequence per step (DeepSeekV3::DecodeBatch, absorbed MLA).
// A request leaves at a stop id, at its token limit or when cancelled (checked before every
// step), and its slot goes to the next queued request.
//
// Determinism: every sequence gets its own Sampler seeded from its request, the prefill of a
// request never mixes with other rows, and the batched decode step computes each row exactly as a
// batch of one would (MatMul's batched GEMV is bit-identical per row). A request's tokens are
// therefore the same whatever else runs beside it — the same as Generate() with the same seed.
//
// Tokens are delivered through an EventQueue, which the caller blocks on; one queue may collect
// the events of several requests (the `n` choices of one API call), told apart by `index`.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/status.h"
#include "infer/sampler.h"
#include "model/deepseek_v3.h"

namespace r1 {

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* FinishReasonName(FinishReason r);  // "stop", "length", "cancelled", "error"

// What the scheduler reports about one request: new tokens, then once a finish.
struct EngineEvent {
  int index = 0;                // the request's index within its queue
  std::vector<int32_t> tokens;  // new tokens (a stop id is not included)
  std::vector<float> logprobs;  // log p of each token under the distribution sampled from
  FinishReason finish = FinishReason::kNone;
  Status error;                 // when finish == kError
};

// A thread-safe mailbox the scheduler pushes events into and a client thread pops from.
class EventQueue {
 public:
  void Push(EngineEvent e);
  // Waits up to `timeout_ms` for events; returns all that are pending (empty on timeout).
  std::vector<EngineEvent> Pop(int timeout_ms);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<EngineEvent> events_;
};

struct EngineRequest {
  std::vector<int32_t> prompt;
  int64_t max_new_tokens = 16;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // generation ends at one of these (not delivered as a token)
  std::shared_ptr<EventQueue> events;
  int index = 0;
};

// The caller's side of a submitted request.
class RequestHandle {
 public:
  // Asks the scheduler to drop the request; its slot is freed before the next step.
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  std::atomic<bool> cancelled_{false};
};

struct EngineOptions {
  int64_t max_batch = 16;  // slots: sequences decoded together
  int64_t ctx = 4096;      // positions per slot (prompt + generated)
  int64_t max_queue = 64;  // requests waiting for a slot beyond which Submit refuses (0: none wait)
};

// Counters for /metrics; a consistent snapshot.
struct EngineStats {
  int64_t requests_submitted = 0;
  int64_t requests_finished = 0;
  int64_t requests_cancelled = 0;
  int64_t requests_rejected = 0;   // queue full
  int64_t prompt_tokens = 0;       // prefilled
  int64_t generated_tokens = 0;
  int64_t decode_steps = 0;
  int64_t widest_step = 0;         // most sequences one decode step ran
  double prefill_seconds = 0;
  double decode_seconds = 0;
  uint64_t decode_bytes = 0;       // memory the decode steps streamed (DeepSeekV3::BytesStreamed)
  int64_t queue_depth = 0;
  int64_t active = 0;              // sequences in the running batch
  int64_t max_batch = 0;
  int64_t kv_tokens = 0;           // positions held in the slots' caches
  int64_t kv_capacity = 0;         // max_batch · ctx
  int64_t kv_bytes = 0;            // memory of all slot caches
  double recent_tokens_per_second = 0;  // generated tokens over the last few seconds
};

class Engine {
 public:
  // Allocates the slots and starts the scheduler. The model must outlive the engine.
  Engine(const DeepSeekV3& model, const EngineOptions& opts);
  ~Engine();  // stops the scheduler; pending requests finish as cancelled
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Checks the request (InvalidArgument / OutOfRange naming what is wrong) and queues it. When the
  // queue is full the error is an OutOfRange with *queue_full set (core has no "unavailable"
  // code), so that a server can answer 503 rather than 400.
  Result<std::shared_ptr<RequestHandle>> Submit(EngineRequest req, bool* queue_full = nullptr);

  EngineStats Stats() const;
  const EngineOptions& options() const { return opts_; }
  const DeepSeekV3& model() const { return model_; }

 private:
  struct Sequence;
  void Loop();
  // Prefills one admitted sequence in slot `slot`; false if it finished already.
  bool Prefill(Sequence& s);
  void Step();
  // Samples, delivers and checks the end of one sequence from its logits row.
  bool Advance(Sequence& s, const float* logits);
  void Finish(Sequence& s, FinishReason r, Status err = Status::Ok());

  const DeepSeekV3& model_;
  EngineOptions opts_;
  std::vector<LatentCache> slots_;
  std::vector<int64_t> free_slots_;  // guarded by mu_

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Sequence>> queue_;  // guarded by mu_
  std::vector<std::unique_ptr<Sequence>> active_;  // scheduler thread only
  bool stop_ = false;
  EngineStats stats_;  // guarded by mu_
  std::deque<std::pair<double, int64_t>> recent_;  // (time, tokens) per step, guarded by mu_
  std::thread thread_;
};

}  // namespace r1
