#include "kernels/runtime.h"

#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <string>
#include <string_view>

namespace r1::kernels {

std::string BlasCoreName() {
  const char* name = openblas_get_corename();
  return name != nullptr ? std::string(name) : std::string();
}

std::string BetterBlasCoreType() {
  // Cores whose sgemm kernels use neither AVX2 nor FMA (OpenBLAS's names, lower case).
  static constexpr std::array<std::string_view, 14> kOld = {
      "unknown", "katmai",   "coppermine", "northwood", "prescott",  "banias",     "core2",
      "penryn",  "dunnington", "nehalem",  "atom",      "sandybridge", "bobcat", "barcelona"};
  std::string core = BlasCoreName();
  std::transform(core.begin(), core.end(), core.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (std::find(kOld.begin(), kOld.end(), core) == kOld.end()) return {};
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return "SKYLAKEX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "HASWELL";
  return {};
}

void RestartWithRuntimeSettings(char** argv) {
  bool restart = false;
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    ::setenv("GOMP_SPINCOUNT", "10000", 1);
    restart = true;
  }
  if (const char* set = std::getenv("OPENBLAS_CORETYPE"); set == nullptr || *set == '\0') {
    const std::string core = BetterBlasCoreType();
    if (!core.empty()) {
      ::setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
      restart = true;
    }
  }
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  std::string t = tunables != nullptr ? tunables : "";
  if (t.find("glibc.malloc.hugetlb") == std::string::npos) {
    t += t.empty() ? "glibc.malloc.hugetlb=1" : ":glibc.malloc.hugetlb=1";
    ::setenv("GLIBC_TUNABLES", t.c_str(), 1);
    restart = true;
  }
  if (restart) ::execv("/proc/self/exe", argv);  // returns only on failure
}

}  // namespace r1::kernels
