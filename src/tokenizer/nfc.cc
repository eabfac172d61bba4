#include "tokenizer/nfc.h"

#include <algorithm>
#include <array>
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

bool IsUnstableSlow(char32_t cp) {
  auto it = std::upper_bound(std::begin(kNfcUnstable), std::end(kNfcUnstable), cp,
                             [](char32_t c, const UnstableRange& r) { return c < r.first; });
  if (it == std::begin(kNfcUnstable)) return false;
  --it;
  return cp <= it->last;
}

// One bit per BMP code point, where nearly all text lives; the rest takes the binary search.
struct BmpUnstableBits {
  std::array<uint64_t, 0x10000 / 64> bits{};
  BmpUnstableBits() {
    for (const UnstableRange& r : kNfcUnstable) {
      for (char32_t c = r.first; c <= r.last && c < 0x10000; ++c) {
        bits[c >> 6] |= uint64_t{1} << (c & 63);
      }
    }
  }
};

bool IsUnstable(char32_t cp) {
  if (cp < 0x300) return false;
  if (cp < 0x10000) {
    static const BmpUnstableBits bmp;
    return (bmp.bits[cp >> 6] >> (cp & 63)) & 1;
  }
  return IsUnstableSlow(cp);
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
  // Text is cut before every stable code point into segments (a stable code point and the
  // unstable ones after it); only segments holding an unstable one are normalized, the rest is
  // copied in bulk. Nothing below U+0300 is unstable, so ASCII is skipped byte by byte.
  std::string out;
  std::vector<char32_t> seg;
  size_t copied = 0;     // text[0, copied) is already in `out`
  size_t seg_start = 0;  // where the current segment starts
  bool seg_unstable = false;
  bool changed = false;  // whether `out` is in use
  auto finish_segment = [&](size_t end) {
    if (!seg_unstable) return;
    if (!changed) out.reserve(text.size() + 16);
    changed = true;
    out.append(text.substr(copied, seg_start - copied));
    seg.clear();
    for (size_t i = seg_start; i < end;) {
      const int32_t v = DecodeUtf8(text, &i);
      seg.push_back(v < 0 ? kReplacementChar : static_cast<char32_t>(v));
    }
    NormalizeSegment(seg, &out);
    copied = end;
    seg_unstable = false;
  };
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    bool unstable = false;
    if (static_cast<uint8_t>(text[i]) < 0x80) {
      ++i;
    } else {
      const int32_t v = DecodeUtf8(text, &i);
      unstable = v >= 0 && IsUnstable(static_cast<char32_t>(v));
    }
    if (unstable) {
      seg_unstable = true;
    } else {
      finish_segment(at);
      seg_start = at;
    }
  }
  finish_segment(text.size());
  if (!changed) return std::string(text);
  out.append(text.substr(copied));
  return out;
}

}  // namespace r1::tok
