// /metrics in the Prometheus text exposition format (version 0.0.4).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "infer/engine.h"

namespace r1::serve {

// HTTP-level counters, updated by the request handlers.
struct HttpCounters {
  std::atomic<int64_t> chat{0}, completions{0}, other{0};
  std::atomic<int64_t> status_2xx{0}, status_4xx{0}, status_5xx{0};
  std::atomic<int64_t> disconnects{0};  // clients gone before their answer was complete
};

std::string FormatMetrics(const EngineStats& s, const HttpCounters& http);

}  // namespace r1::serve
