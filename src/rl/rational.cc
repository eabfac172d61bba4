#include "rl/rational.h"

#include <limits>

namespace r1::rl {
namespace {

using Wide = __int128;

constexpr Wide kMax = std::numeric_limits<int64_t>::max();

Wide Gcd(Wide a, Wide b) {
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  while (b != 0) {
    const Wide t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// num/den (den != 0) in lowest terms, if both fit in int64 (INT64_MIN excluded so negation is
// always safe).
std::optional<Rational> FromWide(Wide num, Wide den) {
  if (den == 0) return std::nullopt;
  if (den < 0) {
    num = -num;
    den = -den;
  }
  const Wide g = Gcd(num, den);
  if (g > 1) {
    num /= g;
    den /= g;
  }
  if (num > kMax || num < -kMax || den > kMax) return std::nullopt;
  return Rational::Make(static_cast<int64_t>(num), static_cast<int64_t>(den));
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Unsigned digits, optionally grouped by thousands commas; appends to `value` (scaled by 10 per
// digit) and counts digits. False on a malformed grouping or overflow.
bool ParseDigits(std::string_view s, bool allow_commas, Wide* value, int* digits) {
  if (s.empty()) return false;
  const bool has_commas = s.find(',') != std::string_view::npos;
  if (has_commas) {
    if (!allow_commas) return false;
    // "1,234,567": a first group of 1-3 digits, then groups of exactly 3.
    size_t start = 0;
    bool first = true;
    while (true) {
      const size_t comma = s.find(',', start);
      const size_t len = (comma == std::string_view::npos ? s.size() : comma) - start;
      if (first ? (len < 1 || len > 3) : len != 3) return false;
      first = false;
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  for (char c : s) {
    if (c == ',') continue;
    if (!IsDigit(c)) return false;
    *value = *value * 10 + (c - '0');
    ++*digits;
    if (*value > kMax) return false;
  }
  return *digits > 0;
}

}  // namespace

std::optional<Rational> Rational::Make(int64_t num, int64_t den) {
  if (den == 0 || num == std::numeric_limits<int64_t>::min() ||
      den == std::numeric_limits<int64_t>::min())
    return std::nullopt;
  if (den < 0) {
    num = -num;
    den = -den;
  }
  const Wide g = Gcd(num, den);
  Rational r;
  r.num_ = static_cast<int64_t>(num / g);
  r.den_ = static_cast<int64_t>(den / g);
  return r;
}

std::string Rational::ToString() const {
  if (den_ == 1) return std::to_string(num_);
  return std::to_string(num_) + "/" + std::to_string(den_);
}

std::optional<Rational> Add(const Rational& a, const Rational& b) {
  return FromWide(Wide(a.num()) * b.den() + Wide(b.num()) * a.den(), Wide(a.den()) * b.den());
}
std::optional<Rational> Sub(const Rational& a, const Rational& b) {
  return FromWide(Wide(a.num()) * b.den() - Wide(b.num()) * a.den(), Wide(a.den()) * b.den());
}
std::optional<Rational> Mul(const Rational& a, const Rational& b) {
  return FromWide(Wide(a.num()) * b.num(), Wide(a.den()) * b.den());
}
std::optional<Rational> Div(const Rational& a, const Rational& b) {
  if (b.num() == 0) return std::nullopt;
  return FromWide(Wide(a.num()) * b.den(), Wide(a.den()) * b.num());
}

std::string_view TrimSpace(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::optional<int64_t> ParseInteger(std::string_view text) {
  std::string_view s = TrimSpace(text);
  bool negative = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  Wide v = 0;
  int digits = 0;
  if (!ParseDigits(s, /*allow_commas=*/true, &v, &digits)) return std::nullopt;
  return static_cast<int64_t>(negative ? -v : v);
}

std::optional<Rational> ParseNumber(std::string_view text) {
  std::string_view s = TrimSpace(text);
  if (s.size() > 64) return std::nullopt;  // no number a verifier compares is this long
  if (const size_t slash = s.find('/'); slash != std::string_view::npos) {
    const std::optional<int64_t> num = ParseInteger(s.substr(0, slash));
    std::string_view den_text = TrimSpace(s.substr(slash + 1));
    if (!den_text.empty() && (den_text.front() == '-' || den_text.front() == '+')) return std::nullopt;
    const std::optional<int64_t> den = ParseInteger(den_text);
    if (!num || !den || *den == 0) return std::nullopt;
    return Rational::Make(*num, *den);
  }
  bool negative = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  const size_t dot = s.find('.');
  std::string_view int_part = s.substr(0, dot);
  std::string_view frac_part = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (dot != std::string_view::npos && frac_part.empty()) return std::nullopt;  // "5."
  Wide v = 0;
  int digits = 0;
  if (!int_part.empty() && !ParseDigits(int_part, /*allow_commas=*/true, &v, &digits)) return std::nullopt;
  Wide den = 1;
  if (!frac_part.empty()) {
    if (frac_part.size() > 18) return std::nullopt;
    int frac_digits = 0;
    if (!ParseDigits(frac_part, /*allow_commas=*/false, &v, &frac_digits)) return std::nullopt;
    for (int i = 0; i < frac_digits; ++i) den *= 10;
    digits += frac_digits;
  }
  if (digits == 0) return std::nullopt;
  return FromWide(negative ? -v : v, den);
}

}  // namespace r1::rl
