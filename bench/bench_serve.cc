// Aggregate decode throughput of the continuous-batching engine with 1, 4 and 16 concurrent
// streams (the serving case of `r1 serve`), on a checkpoint such as the moe-small preset:
//
//   r1 new-model --preset moe-small --out /tmp/moe-small
//   build/release/bench_serve /tmp/moe-small [--streams 1,4,16] [--tokens 64] [--prompt 32]
//                             [--reps 5] [--threads N] [--json]
//
// Each measurement submits S requests at once (random prompts, greedy, no stop id, so every
// request decodes exactly --tokens tokens), waits for all, and reports the decode-step tokens per
// second of decode time (prefill excluded) from the engine's counters. The stream counts are
// interleaved within every repetition (A/B/A/B…) so that a noisy neighbour on a shared core hits
// all of them alike; the medians are reported with the ratio to one stream. Beside them: the
// memory the decode steps streamed per token (weights once per product, embedding rows, latent
// cache; DeepSeekV3::BytesStreamed), the rate they streamed it at, and the traffic bound — the
// ratio to the first stream count that memory traffic allows when every step streams at one rate.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/rng.h"
#include "infer/engine.h"
#include "kernels/runtime.h"
#include "model/deepseek_v3.h"

namespace {

using r1::Engine;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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

// Decode tokens/s of S concurrent streams, and the memory the decode steps streamed.
struct Measurement {
  double tokens_per_second, bytes_per_token, bytes_per_second;
};

Measurement Measure(Engine& engine, int S, int64_t prompt_len, int64_t tokens, uint64_t seed) {
  const int64_t V = engine.model().config().vocab_size;
  r1::Rng rng(seed);
  auto q = std::make_shared<r1::EventQueue>();
  const r1::EngineStats before = engine.Stats();
  for (int i = 0; i < S; ++i) {
    r1::EngineRequest r;
    for (int64_t t = 0; t < prompt_len; ++t) r.prompt.push_back(static_cast<int32_t>(rng.Below(V)));
    r.max_new_tokens = tokens;
    r.events = q;
    r.index = i;
    auto h = engine.Submit(std::move(r));
    R1_CHECK(h.ok()) << h.status().ToString();
  }
  for (int done = 0; done < S;)
    for (const r1::EngineEvent& e : q->Pop(100)) done += e.finish != r1::FinishReason::kNone;
  const r1::EngineStats after = engine.Stats();
  const double sec = after.decode_seconds - before.decode_seconds;
  const double made = static_cast<double>(after.generated_tokens - before.generated_tokens);
  const double bytes = static_cast<double>(after.decode_bytes - before.decode_bytes);
  return {made / sec, bytes / made, bytes / sec};
}

}  // namespace

int main(int argc, char** argv) {
  r1::kernels::RestartWithRuntimeSettings(argv);  // the same OpenMP spin and OpenBLAS core as r1
  std::string dir;
  std::vector<int> streams = {1, 4, 16};
  int64_t tokens = 64, prompt = 32;
  int reps = 5, threads = 0;
  bool json = false;
  r1::io::LoadOptions load;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_serve: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--streams") streams = ParseInts(next());
    else if (a == "--tokens") tokens = std::atoll(next());
    else if (a == "--prompt") prompt = std::atoll(next());
    else if (a == "--reps") reps = std::atoi(next());
    else if (a == "--threads") threads = std::atoi(next());
    else if (a == "--json") json = true;
    else if (a == "--no-mmap") load.mmap = false;
    else if (!a.empty() && a[0] != '-' && dir.empty()) dir = a;
    else {
      std::fprintf(stderr, "usage: bench_serve MODEL_DIR [--streams 1,4,16] [--tokens N] [--prompt N] [--reps N] "
                           "[--threads N] [--no-mmap] [--json]\n");
      return 2;
    }
  }
  if (dir.empty() || streams.empty() || tokens < 2 || prompt < 1 || reps < 1) {
    std::fprintf(stderr, "usage: bench_serve MODEL_DIR [--streams 1,4,16] [--tokens N] [--prompt N] [--reps N]\n");
    return 2;
  }
  if (threads > 0) omp_set_num_threads(threads);
  auto model = r1::DeepSeekV3::Load(dir, load);
  if (!model.ok()) {
    std::fprintf(stderr, "bench_serve: %s\n", model.status().ToString().c_str());
    return 1;
  }
  r1::EngineOptions eo;
  eo.max_batch = *std::max_element(streams.begin(), streams.end());
  eo.ctx = std::min<int64_t>(prompt + tokens + 1, (*model)->config().max_position_embeddings);
  eo.max_queue = eo.max_batch;
  Engine engine(**model, eo);
  Measure(engine, streams[0], prompt, 4, 1);  // warm-up: page in the weights
  std::map<int, std::vector<double>> tps, per_token, rate;
  for (int r = 0; r < reps; ++r)
    for (int s : streams) {
      const Measurement m = Measure(engine, s, prompt, tokens, 100 + r);
      tps[s].push_back(m.tokens_per_second);
      per_token[s].push_back(m.bytes_per_token);
      rate[s].push_back(m.bytes_per_second);
    }
  const double base = Median(tps[streams[0]]), base_bytes = Median(per_token[streams[0]]);
  nlohmann::json report = {{"model", dir}, {"threads", omp_get_max_threads()}, {"tokens", tokens},
                           {"prompt", prompt}, {"reps", reps}};
  // "traffic bound": the ratio memory traffic allows, were every step to stream at one rate:
  // the first stream count's bytes per token over this one's.
  if (!json)
    std::printf("%8s %12s %12s %8s %10s %8s %14s\n", "streams", "tokens/s", "per stream", "vs 1", "MB/token",
                "GB/s", "traffic bound");
  for (int s : streams) {
    const double m = Median(tps[s]), b = Median(per_token[s]), g = Median(rate[s]);
    report["results"].push_back({{"streams", s}, {"tokens_per_second", m}, {"runs", tps[s]}, {"ratio", m / base},
                                 {"bytes_per_token", b}, {"bytes_per_second", g}, {"traffic_bound", base_bytes / b}});
    if (!json)
      std::printf("%8d %12.1f %12.1f %7.2fx %10.1f %8.1f %13.2fx\n", s, m, m / s, m / base, b / 1e6, g / 1e9,
                  base_bytes / b);
  }
  if (json) std::printf("%s\n", report.dump(2).c_str());
  return 0;
}
