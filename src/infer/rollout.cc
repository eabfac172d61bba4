#include "infer/rollout.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <optional>
#include <span>

#include "core/log.h"
#include "core/threads.h"
#include "kernels/matmul.h"

namespace r1 {

RolloutOptions::Split DecodeSplit(uint64_t matrix_bytes, uint64_t llc_bytes, int threads) {
  const bool fits = llc_bytes > 0 && 2 * matrix_bytes <= llc_bytes;
  return threads > 1 && fits ? RolloutOptions::Split::kSequences : RolloutOptions::Split::kProducts;
}

uint64_t LastLevelCacheBytes() {
  for (int name : {_SC_LEVEL3_CACHE_SIZE, _SC_LEVEL2_CACHE_SIZE}) {
    const long v = sysconf(name);
    if (v > 0) return static_cast<uint64_t>(v);
  }
  return 0;
}

double LogProbAt(const float* logits, int64_t V, int32_t id, float temperature) {
  return LogSoftmaxAt(logits, V, id, std::max(temperature, 1e-6f));
}

Result<std::vector<Completion>> SampleCompletions(const DeepSeekV3& model,
                                                  const std::vector<std::vector<int32_t>>& prompts,
                                                  const RolloutOptions& opts, RolloutStats* stats, FfnTape* tape) {
  const ModelConfig& c = model.config();
  const int64_t V = c.vocab_size, G = opts.group;
  if (G < 1) return InvalidArgument("group must be >= 1");
  if (opts.max_batch < 1) return InvalidArgument("max_batch must be >= 1");
  Timer timer;
  struct Seq {
    Completion out;
    std::unique_ptr<LatentCache> cache;
    std::unique_ptr<Sampler> sampler;
    std::vector<float> logits;  // of the next position
    bool done = false;
  };
  for (size_t p = 0; p < prompts.size(); ++p) {
    const auto& prompt = prompts[p];
    const int64_t P = static_cast<int64_t>(prompt.size());
    if (P == 0) return InvalidArgument("prompt " + std::to_string(p) + " is empty");
    if (P + opts.max_new_tokens > c.max_position_embeddings)
      return OutOfRange("prompt " + std::to_string(p) + " (" + std::to_string(P) + " tokens) + max_new_tokens " +
                        std::to_string(opts.max_new_tokens) + " exceed the context of " +
                        std::to_string(c.max_position_embeddings));
    for (int32_t id : prompt)
      if (id < 0 || id >= V)
        return InvalidArgument("prompt " + std::to_string(p) + " has token id " + std::to_string(id) +
                               " outside the vocabulary");
  }
  const int threads = std::max(1, omp_get_max_threads());
  RolloutOptions::Split split = opts.split;
  if (split == RolloutOptions::Split::kAuto) {
    const auto bytes = static_cast<uint64_t>(model.DecodeMatrixBytes(DeepSeekV3::RoutedExperts::kAll));
    split = DecodeSplit(bytes, LastLevelCacheBytes(), threads);
  }
  const bool per_thread = split == RolloutOptions::Split::kSequences;
  // Per-thread decoding of an MoE model shares each step's routed experts between the threads.
  const bool exchange_experts = per_thread && ParallelAvailable() &&
                                std::any_of(model.weights().layers.begin(), model.weights().layers.end(),
                                            [](const LayerWeights& lw) { return lw.is_moe; });
  std::optional<ExpertExchange> exchange;  // kept from step to step for its buffers
  // Prefill each prompt once and copy its latent cache to its G completions. The prompts go in
  // runs of up to kPrefillPrompts consecutive ones, each run's products on all its rows together
  // (attention per prompt); with kSequences each thread prefills whole runs on its own, as it
  // decodes, else the threads share each run's products. The runs depend on the prompts alone, so
  // the products' rows, and the completions, come out the same for any thread count and split.
  // A small MoE model's 8 x 14-token prompts on one thread: 9.5 ms one by one, 6.8 ms in runs of 4.
  std::vector<Seq> seqs(prompts.size() * static_cast<size_t>(G));
  // Tape rows: each prompt's tokens, then max_new_tokens − 1 per completion.
  std::vector<int64_t> prompt_row(prompts.size(), -1);
  if (tape) {
    int64_t n = 0;
    for (const auto& prompt : prompts) n += static_cast<int64_t>(prompt.size());
    int64_t row = tape->Append(n + static_cast<int64_t>(seqs.size()) * (opts.max_new_tokens - 1));
    for (size_t p = 0; p < prompts.size(); ++p) {
      prompt_row[p] = row;
      row += static_cast<int64_t>(prompts[p].size());
    }
    for (Seq& s : seqs) {
      s.out.tape_row = row;
      row += opts.max_new_tokens - 1;
    }
  }
  constexpr int64_t kPrefillPrompts = 4;
  const int64_t n_prompts = static_cast<int64_t>(prompts.size());
  const int64_t runs = (n_prompts + kPrefillPrompts - 1) / kPrefillPrompts;
  std::vector<Status> prefill_status(static_cast<size_t>(runs));
  ParallelFor(
      runs, per_thread,
      [&](int64_t r) {
        const int64_t p0 = r * n_prompts / runs, p1 = (r + 1) * n_prompts / runs;
        std::vector<LatentCache> caches;
        std::vector<LatentCache*> cache_ptrs;
        std::vector<int64_t> rows;
        for (int64_t p = p0; p < p1; ++p) {
          const int64_t P = static_cast<int64_t>(prompts[static_cast<size_t>(p)].size());
          caches.push_back(model.NewCache(P + opts.max_new_tokens));
          for (int64_t i = 0; tape && i < P; ++i) rows.push_back(prompt_row[static_cast<size_t>(p)] + i);
        }
        for (LatentCache& cache : caches) cache_ptrs.push_back(&cache);
        std::vector<float> last(static_cast<size_t>((p1 - p0) * V));
        Status& st = prefill_status[static_cast<size_t>(r)];
        st = model.Prefill(std::span(prompts).subspan(static_cast<size_t>(p0), static_cast<size_t>(p1 - p0)),
                           cache_ptrs.data(), last.data(), {tape, rows.data()});
        if (!st.ok()) return;
        for (int64_t p = p0; p < p1; ++p)
          for (int64_t i = 0; i < G; ++i) {
            Seq& s = seqs[static_cast<size_t>(p * G + i)];
            s.out.prompt_index = p;
            s.out.tape_prompt_row = prompt_row[static_cast<size_t>(p)];
            s.cache = std::make_unique<LatentCache>(caches[static_cast<size_t>(p - p0)]);
            s.sampler = std::make_unique<Sampler>(
                SamplingParams{opts.temperature, opts.top_p, opts.top_k, opts.seed + static_cast<uint64_t>(p * G + i)});
            s.logits.assign(last.begin() + (p - p0) * V, last.begin() + (p - p0 + 1) * V);
          }
      },
      Schedule::kDynamic);
  for (const Status& st : prefill_status) R1_RETURN_IF_ERROR(st);
  // Token `step` of a sequence (0-based), drawn from its pending logits by its own sampler: where
  // and in which order sequences are sampled does not change what they draw.
  auto sample = [&](Seq& s, int64_t step) {
    const int32_t id = s.sampler->Sample(s.logits.data(), V);
    s.out.ids.push_back(id);
    s.out.logprobs.push_back(static_cast<float>(LogProbAt(s.logits.data(), V, id, opts.temperature)));
    if (std::find(opts.stop_ids.begin(), opts.stop_ids.end(), id) != opts.stop_ids.end()) {
      s.out.stopped = true;
      s.done = true;
    } else if (step + 1 == opts.max_new_tokens) {
      s.done = true;
    }
  };
  ParallelFor(static_cast<int64_t>(seqs.size()), per_thread,
              [&](int64_t i) { sample(seqs[static_cast<size_t>(i)], 0); });
  // Decode the unfinished sequences together; each chunk's sequences then draw their next token on
  // the thread that decoded them (serial sampling between the steps had the other threads idle).
  for (int64_t step = 0; step + 1 < opts.max_new_tokens; ++step) {
    std::vector<Seq*> active;
    for (Seq& s : seqs)
      if (!s.done) active.push_back(&s);
    if (active.empty()) break;
    // Chunks of sequences: one per thread at a time (kSequences), or one after another with
    // every product shared by the threads (kProducts).
    const int64_t A = static_cast<int64_t>(active.size());
    int64_t chunk = opts.max_batch;
    if (per_thread) chunk = std::min({chunk, kernels::kMaxBatchGemv, (A + threads - 1) / threads});
    const int64_t n_chunks = (A + chunk - 1) / chunk;
    std::vector<Status> status(static_cast<size_t>(n_chunks));
    auto decode = [&](int64_t ci, ExpertExchange* exchange) {
      const int64_t b0 = ci * chunk, n = std::min(chunk, A - b0);
      std::vector<int32_t> ids(static_cast<size_t>(n));
      std::vector<LatentCache*> caches(static_cast<size_t>(n));
      std::vector<int64_t> rows(static_cast<size_t>(tape ? n : 0));
      for (int64_t j = 0; j < n; ++j) {
        ids[j] = active[b0 + j]->out.ids.back();
        caches[j] = active[b0 + j]->cache.get();
        if (tape) rows[j] = active[b0 + j]->out.tape_row + step;  // ids[step] is fed
      }
      std::vector<float> out(static_cast<size_t>(n * V));
      status[ci] = model.DecodeBatch(ids.data(), n, caches.data(), out.data(), exchange, {tape, rows.data()});
      if (!status[ci].ok()) return;
      for (int64_t j = 0; j < n; ++j) {
        active[b0 + j]->logits.assign(out.begin() + j * V, out.begin() + (j + 1) * V);
        sample(*active[b0 + j], step + 1);
      }
    };
    if (exchange_experts && n_chunks > 1 && n_chunks <= threads) {
      // One chunk per thread, the threads sharing the routed experts (ExpertExchange); a team
      // smaller than asked for (a thread limit) decodes the chunks on its own instead.
      if (!exchange || exchange->threads() != n_chunks)
        exchange.emplace(static_cast<int>(n_chunks), c.n_routed_experts);
#pragma omp parallel num_threads(static_cast<int>(n_chunks))
      {
        if (omp_get_num_threads() == static_cast<int>(n_chunks)) {
          decode(omp_get_thread_num(), &*exchange);
        } else {
#pragma omp for schedule(dynamic, 1)
          for (int64_t ci = 0; ci < n_chunks; ++ci) decode(ci, nullptr);
        }
      }
    } else {
      // A plain loop when the threads share the products: an `if (false)` region would still open
      // a one-thread team, and every product's region inside it would then be a nested one.
      ParallelFor(n_chunks, per_thread, [&](int64_t ci) { decode(ci, nullptr); }, Schedule::kDynamic);
    }
    for (const Status& st : status) R1_RETURN_IF_ERROR(st);
  }
  std::vector<Completion> result;
  result.reserve(seqs.size());
  int64_t tokens = 0;
  for (Seq& s : seqs) {
    tokens += static_cast<int64_t>(s.out.ids.size());
    result.push_back(std::move(s.out));
  }
  if (stats) {
    stats->tokens = tokens;
    stats->seconds = timer.Seconds();
  }
  return result;
}

}  // namespace r1
