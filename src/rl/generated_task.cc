#include "rl/generated_task.h"

#include "core/check.h"

namespace r1::rl {
namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Enough for any argument set that passed CheckSplitsReachable: a 1% split needs ~100 draws.
constexpr uint64_t kMaxDraws = uint64_t{1} << 22;

}  // namespace

uint64_t StableHash(std::string_view s, uint64_t salt) {
  uint64_t h = 0xcbf29ce484222325ull ^ Mix(salt);
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return Mix(h);
}

bool HasIntegerFields(const Problem& p, std::initializer_list<const char*> keys, const char* array_key) {
  if (!p.data.is_object()) return false;
  for (const char* k : keys) {
    auto it = p.data.find(k);
    if (it == p.data.end() || !it->is_number_integer()) return false;
  }
  if (array_key != nullptr) {
    auto it = p.data.find(array_key);
    if (it == p.data.end() || !it->is_array()) return false;
    for (const nlohmann::json& v : *it)
      if (!v.is_number_integer()) return false;
  }
  return true;
}

Result<GeneratedTaskOptions> ParseGeneratedTaskOptions(TaskArgs& args) {
  GeneratedTaskOptions o;
  R1_ASSIGN_OR_RETURN(int64_t seed, args.Int("seed", 0, 0, INT64_MAX));
  R1_ASSIGN_OR_RETURN(o.heldout, args.Fraction("heldout", 0.15, 0.01, 0.5));
  o.seed = static_cast<uint64_t>(seed);
  return o;
}

Split GeneratedTask::SplitOfKey(const std::string& key) const {
  const uint64_t h = StableHash(name_ + '\0' + key);
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
  return u < options_.heldout ? Split::kHeldOut : Split::kTrain;
}

std::optional<Problem> GeneratedTask::TryGenerate(Split split, uint64_t index, uint64_t max_draws) const {
  Rng rng(Mix(Mix(options_.seed) ^ (split == Split::kTrain ? 0x7472ull : 0x686full)) ^ Mix(index + 1));
  for (uint64_t i = 0; i < max_draws; ++i) {
    std::optional<Problem> p = Draw(rng);
    if (p && SplitOfKey(Key(*p)) == split) return p;
  }
  return std::nullopt;
}

Problem GeneratedTask::Generate(Split split, uint64_t index) const {
  std::optional<Problem> p = TryGenerate(split, index, kMaxDraws);
  // MakeTask checked that both splits come up; not finding one now would be a generator bug.
  R1_CHECK(p.has_value()) << name_ << ": no " << SplitName(split) << " problem after " << kMaxDraws << " draws";
  return std::move(*p);
}

Status GeneratedTask::CheckSplitsReachable() const {
  for (Split split : {Split::kTrain, Split::kHeldOut}) {
    for (uint64_t index = 0; index < 8; ++index) {
      if (!TryGenerate(split, index, 4096))
        return InvalidArgument(name_ + " task args: they leave too few " + SplitName(split) +
                               " problems (widen the ranges)");
    }
  }
  return Status::Ok();
}

}  // namespace r1::rl
