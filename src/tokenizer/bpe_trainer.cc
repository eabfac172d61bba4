#include "tokenizer/bpe_trainer.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <nlohmann/json.hpp>
#include <queue>

#include "core/log.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace r1::tok {

using json = nlohmann::json;

namespace {
// Progress on a terminal rewrites one line; into a file or pipe only every 64th update prints.
bool StderrIsTty() {
  static const bool tty = ::isatty(STDERR_FILENO) == 1;
  return tty;
}
const char* ProgressEnd() { return StderrIsTty() ? "" : "\n"; }
const char* ProgressStart() { return StderrIsTty() ? "\r" : ""; }
}  // namespace

const std::vector<SpecialTokenSpec>& R1LeadingSpecialTokens() {
  static const std::vector<SpecialTokenSpec> k = {
      {"<｜begin▁of▁sentence｜>", true}, {"<｜end▁of▁sentence｜>", true}, {"<｜▁pad▁｜>", true}};
  return k;
}

const std::vector<SpecialTokenSpec>& R1TrailingSpecialTokens() {
  static const std::vector<SpecialTokenSpec> k = {{"<｜User｜>", false},
                                                  {"<｜Assistant｜>", false},
                                                  {"<think>", false},
                                                  {"</think>", false},
                                                  {"<|EOT|>", true},
                                                  {"<｜fim▁hole｜>", false},
                                                  {"<｜fim▁begin｜>", false},
                                                  {"<｜fim▁end｜>", false},
                                                  {"<｜tool▁calls▁begin｜>", false},
                                                  {"<｜tool▁calls▁end｜>", false},
                                                  {"<｜tool▁call▁begin｜>", false},
                                                  {"<｜tool▁call▁end｜>", false},
                                                  {"<｜tool▁outputs▁begin｜>", false},
                                                  {"<｜tool▁outputs▁end｜>", false},
                                                  {"<｜tool▁output▁begin｜>", false},
                                                  {"<｜tool▁output▁end｜>", false},
                                                  {"<｜tool▁sep｜>", false}};
  return k;
}

std::string TrainerPreTokenizerJson(DigitSplit digits) {
  // = DeepSeek-V3's tokenizer.json pre_tokenizer, with an optional single-digit split.
  const auto split = [](const std::string& regex) {
    return json{{"type", "Split"},
                {"pattern", {{"Regex", regex}}},
                {"behavior", "Isolated"},
                {"invert", false}};
  };
  json pre = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array(
           {split(digits == DigitSplit::kSingle ? "\\p{N}" : "\\p{N}{1,3}"),
            split("[一-龥぀-ゟ゠-ヿ]+"),
            split("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
                  "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
            {{"type", "ByteLevel"},
             {"add_prefix_space", false},
             {"trim_offsets", true},
             {"use_regex", false}}})}};
  return pre.dump();
}

Result<std::unique_ptr<BpeTrainer>> BpeTrainer::Create(const BpeTrainerOptions& options) {
  const int reserved =
      256 + static_cast<int>(R1LeadingSpecialTokens().size() + R1TrailingSpecialTokens().size());
  if (options.vocab_size <= reserved) {
    return InvalidArgument(StrFormat("--vocab-size must exceed %d (256 bytes + %d special tokens)",
                                     reserved, reserved - 256));
  }
  std::unique_ptr<BpeTrainer> t(new BpeTrainer());
  t->options_ = options;
  R1_ASSIGN_OR_RETURN(t->pre_tokenizer_,
                      PreTokenizer::FromJson(json::parse(TrainerPreTokenizerJson(options.digits))));
  std::vector<AddedToken> specials;
  int32_t id = 0;
  for (const auto* list : {&R1LeadingSpecialTokens(), &R1TrailingSpecialTokens()}) {
    for (const SpecialTokenSpec& s : *list) specials.push_back({s.content, id++, s.special});
  }
  t->specials_.Add(specials);
  return t;
}

void BpeTrainer::AddText(std::string_view text) {
  std::string sanitized;
  if (!IsValidUtf8(text)) {
    sanitized = SanitizeUtf8(text);
    text = sanitized;
  }
  corpus_bytes_ += text.size();
  std::vector<Section> sections;
  specials_.Split(text, &sections);
  std::vector<std::string_view> pieces;
  std::deque<std::string> arena;
  for (const Section& s : sections) {
    if (s.token_id >= 0) continue;
    pieces.clear();
    pre_tokenizer_.Split(s.text, &pieces, &arena);
    for (std::string_view p : pieces) ++word_counts_[std::string(p)];
  }
}

Status BpeTrainer::AddFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return NotFound(path + ": cannot open corpus file");
  std::string buf, carry;
  buf.resize(1 << 20);
  Timer timer;
  uint64_t done = 0;
  for (;;) {
    const size_t n = std::fread(buf.data(), 1, buf.size(), f);
    if (n == 0) break;
    carry.append(buf.data(), n);
    done += n;
    // Cut after the last newline that is followed by a non-space, so no white-space run or
    // word is split between chunks.
    size_t cut = std::string::npos;
    for (size_t i = carry.size(); i-- > 1;) {
      if (carry[i - 1] == '\n' && carry[i] != '\n' && carry[i] != ' ' && carry[i] != '\r' &&
          carry[i] != '\t') {
        cut = i;
        break;
      }
    }
    if (cut == std::string::npos) continue;
    AddText(std::string_view(carry).substr(0, cut));
    carry.erase(0, cut);
    if (options_.progress && (StderrIsTty() || (done >> 20) % 64 == 0)) {
      std::fprintf(stderr, "%sr1: counting %s: %.1f MB, %zu distinct words%s", ProgressStart(),
                   path.c_str(), done / 1e6, word_counts_.size(), ProgressEnd());
    }
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return IoError(path + ": read error");
  AddText(carry);
  if (options_.progress) {
    std::fprintf(stderr, "%sr1: counted %s: %.1f MB, %zu distinct words in %.1f s\n",
                 ProgressStart(), path.c_str(), done / 1e6, word_counts_.size(), timer.Seconds());
  }
  return Status::Ok();
}

namespace {

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

}  // namespace

Result<TrainedBpe> BpeTrainer::Train() {
  Timer timer;
  TrainedBpe out;
  out.digits = options_.digits;
  out.corpus_bytes = corpus_bytes_;
  out.words = word_counts_.size();
  // Token ids: leading specials, then the 256 bytes sorted by their byte-level code point (as
  // HF's trainer orders the alphabet), then merges, then the trailing specials.
  for (const SpecialTokenSpec& s : R1LeadingSpecialTokens()) out.tokens.push_back(s.content);
  std::vector<int> bytes(256);
  for (int b = 0; b < 256; ++b) bytes[b] = b;
  std::sort(bytes.begin(), bytes.end(), [](int a, int b) { return ByteToChar(a) < ByteToChar(b); });
  std::vector<int32_t> byte_id(256);
  for (int b : bytes) {
    byte_id[b] = static_cast<int32_t>(out.tokens.size());
    out.tokens.push_back(std::string(1, static_cast<char>(b)));
  }
  const int target = options_.vocab_size - static_cast<int>(R1TrailingSpecialTokens().size());

  // Words in a fixed order (sorted by bytes) so that everything below is deterministic.
  std::vector<std::pair<std::string, int64_t>> sorted(word_counts_.begin(), word_counts_.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [w, c] : sorted) {
    Word word{{}, c};
    for (unsigned char ch : w) word.symbols.push_back(byte_id[ch]);
    words.push_back(std::move(word));
  }
  sorted.clear();

  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;
  for (int32_t wi = 0; wi < static_cast<int32_t>(words.size()); ++wi) {
    const auto& s = words[wi].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t k = PairKey(s[i], s[i + 1]);
      pair_count[k] += words[wi].count;
      where[k].push_back(wi);
    }
  }
  // Max-heap on (count, then smallest left bytes, then smallest right bytes); counts in the heap
  // may be stale overestimates and are re-checked when popped.
  struct Entry {
    int64_t count;
    uint64_t key;
  };
  auto less = [&out](const Entry& x, const Entry& y) {
    if (x.count != y.count) return x.count < y.count;
    const std::string& xa = out.tokens[x.key >> 32];
    const std::string& ya = out.tokens[y.key >> 32];
    if (xa != ya) return xa > ya;
    return out.tokens[static_cast<uint32_t>(x.key)] > out.tokens[static_cast<uint32_t>(y.key)];
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(less)> heap(less);
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  std::unordered_map<std::string, int32_t> token_ids;
  for (int32_t id = 0; id < static_cast<int32_t>(out.tokens.size()); ++id) {
    token_ids.emplace(out.tokens[id], id);
  }
  std::vector<uint32_t> seen(words.size(), 0);
  uint32_t stamp = 0;
  std::vector<uint64_t> touched;
  while (static_cast<int>(out.tokens.size()) < target && !heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    auto pc = pair_count.find(top.key);
    const int64_t current = pc == pair_count.end() ? 0 : pc->second;
    if (current != top.count) {
      if (current > 0) heap.push({current, top.key});
      continue;
    }
    if (current < options_.min_frequency) break;
    const int32_t a = static_cast<int32_t>(top.key >> 32), b = static_cast<int32_t>(top.key);
    const std::string merged = out.tokens[a] + out.tokens[b];
    int32_t c;
    if (auto it = token_ids.find(merged); it != token_ids.end()) {
      c = it->second;  // reached again through another pair: reuse the token (as HF does)
    } else {
      c = static_cast<int32_t>(out.tokens.size());
      out.tokens.push_back(merged);
      token_ids.emplace(merged, c);
    }
    out.merges.push_back({a, b});
    // Re-count the pairs of every word holding (a, b): subtract before, merge, add after.
    ++stamp;
    touched.clear();
    std::vector<int32_t> holders = std::move(where[top.key]);
    where.erase(top.key);
    for (int32_t wi : holders) {
      if (seen[wi] == stamp) continue;
      seen[wi] = stamp;
      Word& w = words[wi];
      auto& s = w.symbols;
      bool has = false;
      for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == a && s[i + 1] == b;
      if (!has) continue;
      for (size_t i = 0; i + 1 < s.size(); ++i) pair_count[PairKey(s[i], s[i + 1])] -= w.count;
      size_t r = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          s[r++] = c;
          ++i;
        } else {
          s[r++] = s[i];
        }
      }
      s.resize(r);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = PairKey(s[i], s[i + 1]);
        pair_count[k] += w.count;
        if (s[i] == c || s[i + 1] == c) {
          where[k].push_back(wi);
          touched.push_back(k);
        }
      }
    }
    pair_count.erase(top.key);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t k : touched) heap.push({pair_count[k], k});
    const size_t every = StderrIsTty() ? 500 : 5000;
    if (options_.progress &&
        (out.merges.size() % every == 0 || static_cast<int>(out.tokens.size()) == target)) {
      std::fprintf(stderr, "%sr1: merges %zu, vocabulary %zu/%d, last pair count %lld%s",
                   ProgressStart(), out.merges.size(),
                   out.tokens.size() + R1TrailingSpecialTokens().size(), options_.vocab_size,
                   static_cast<long long>(current), ProgressEnd());
    }
  }
  out.first_trailing_special = static_cast<int32_t>(out.tokens.size());
  for (const SpecialTokenSpec& s : R1TrailingSpecialTokens()) out.tokens.push_back(s.content);
  if (options_.progress) {
    std::fprintf(stderr, "%sr1: trained %zu merges, %zu tokens in %.1f s\n",
                 StderrIsTty() ? "\n" : "", out.merges.size(), out.tokens.size(), timer.Seconds());
  }
  return out;
}

}  // namespace r1::tok
