#include "tokenizer/nfc.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "tokenizer/utf8.h"

namespace r1::tok {
namespace {

struct CccRange {
  char32_t first, last;
  uint8_t ccc;
};
struct Decomp {
  char32_t cp;
  uint16_t offset;
  uint8_t length;
};
struct Composition {
  char32_t first, second, composite;
};
struct UnstableRange {
  char32_t first, last;
};

#include "tokenizer/nfc_tables.inc"

// Hangul syllables compose and decompose algorithmically (Unicode §3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
              kSCount = kLCount * kNCount;

uint8_t Ccc(char32_t cp) {
  if (cp < 0x300) return 0;
  auto it = std::upper_bound(std::begin(kCccRanges), std::end(kCccRanges), cp,
                             [](char32_t c, const CccRange& r) { return c < r.first; });
  if (it == std::begin(kCccRanges)) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

bool IsUnstable(char32_t cp) {
  if (cp < 0x300) return false;
  auto it = std::upper_bound(std::begin(kNfcUnstable), std::end(kNfcUnstable), cp,
                             [](char32_t c, const UnstableRange& r) { return c < r.first; });
  if (it == std::begin(kNfcUnstable)) return false;
  --it;
  return cp <= it->last;
}

void Decompose(char32_t cp, std::vector<char32_t>* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const int s = cp - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  auto it = std::lower_bound(std::begin(kDecomps), std::end(kDecomps), cp,
                             [](const Decomp& d, char32_t c) { return d.cp < c; });
  if (it != std::end(kDecomps) && it->cp == cp) {
    out->insert(out->end(), kDecompPool + it->offset, kDecompPool + it->offset + it->length);
  } else {
    out->push_back(cp);
  }
}

// Returns the primary composite of (a, b) or 0.
char32_t Compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  auto it = std::lower_bound(std::begin(kCompositions), std::end(kCompositions), a,
                             [](const Composition& c, char32_t x) { return c.first < x; });
  for (; it != std::end(kCompositions) && it->first == a; ++it) {
    if (it->second == b) return it->composite;
  }
  return 0;
}

// Full NFC of one segment of code points, appended to `out` as UTF-8.
void NormalizeSegment(const std::vector<char32_t>& seg, std::string* out) {
  std::vector<char32_t> d;
  d.reserve(seg.size() + 4);
  for (char32_t cp : seg) Decompose(cp, &d);
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < d.size();) {
    if (Ccc(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && Ccc(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j,
                     [](char32_t a, char32_t b) { return Ccc(a) < Ccc(b); });
    i = j;
  }
  // Canonical composition: C joins the last starter S unless some character between them has
  // class 0 or a class >= class(C); by canonical order only the last one appended matters.
  std::vector<char32_t> r;
  r.reserve(d.size());
  size_t starter = SIZE_MAX;
  int last_ccc = 0;
  for (char32_t c : d) {
    const int ccc = Ccc(c);
    if (starter != SIZE_MAX) {
      const bool unblocked = r.size() == starter + 1 || (last_ccc != 0 && last_ccc < ccc);
      if (unblocked) {
        if (char32_t comp = Compose(r[starter], c)) {
          r[starter] = comp;
          continue;
        }
      }
    }
    if (ccc == 0) {
      starter = r.size();
      last_ccc = 0;
    } else {
      last_ccc = ccc;
    }
    r.push_back(c);
  }
  for (char32_t c : r) AppendUtf8(c, out);
}

}  // namespace

const char* NfcUnicodeVersion() { return kNfcUnicodeVersion; }

std::string NfcNormalize(std::string_view text) {
  // Quick check: nothing below U+0300 is affected; most text has no unstable code point at all.
  bool any = false;
  for (size_t i = 0; i < text.size() && !any;) {
    if (static_cast<uint8_t>(text[i]) < 0xCC) {  // lead bytes below 0xCC encode < U+0300
      ++i;
      continue;
    }
    const int32_t cp = DecodeUtf8(text, &i);
    any = cp >= 0 && IsUnstable(static_cast<char32_t>(cp));
  }
  if (!any) return std::string(text);

  // Segment before every stable code point; normalize only segments holding an unstable one.
  std::string out;
  out.reserve(text.size());
  std::vector<char32_t> seg;
  bool seg_unstable = false;
  size_t seg_start = 0;
  auto flush = [&](size_t end) {
    if (seg_unstable) {
      NormalizeSegment(seg, &out);
    } else {
      out.append(text.substr(seg_start, end - seg_start));
    }
    seg.clear();
    seg_unstable = false;
    seg_start = end;
  };
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    const int32_t v = DecodeUtf8(text, &i);
    const char32_t cp = v < 0 ? kReplacementChar : static_cast<char32_t>(v);
    const bool unstable = IsUnstable(cp);
    if (!unstable && !seg.empty()) flush(at);
    seg.push_back(cp);
    seg_unstable |= unstable;
  }
  flush(text.size());
  return out;
}

}  // namespace r1::tok
