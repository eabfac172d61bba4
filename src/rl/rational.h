// Exact rational numbers for verifiers: int64 numerator / positive int64 denominator, always in
// lowest terms. Every operation that would overflow (or divide by zero) yields nullopt instead of
// a wrong value, so a verifier can reject "huge" answers rather than compare garbage. No floats
// anywhere: (7/3)*3 is exactly 7.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace r1::rl {

class Rational {
 public:
  Rational() = default;
  // An integer.
  Rational(int64_t n) : num_(n) {}  // NOLINT: implicit by design (integers are rationals)
  // num/den in lowest terms; nullopt when den == 0 or normalizing overflows (INT64_MIN).
  static std::optional<Rational> Make(int64_t num, int64_t den);

  int64_t num() const { return num_; }
  int64_t den() const { return den_; }
  bool is_integer() const { return den_ == 1; }

  friend bool operator==(const Rational& a, const Rational& b) = default;
  // "7", "-3/4".
  std::string ToString() const;

 private:
  int64_t num_ = 0;
  int64_t den_ = 1;
};

std::optional<Rational> Add(const Rational& a, const Rational& b);
std::optional<Rational> Sub(const Rational& a, const Rational& b);
std::optional<Rational> Mul(const Rational& a, const Rational& b);
// nullopt when b == 0.
std::optional<Rational> Div(const Rational& a, const Rational& b);

// Parses a plain number written by a person: optional sign, digits with optional thousands
// commas ("1,234"), an optional decimal part ("0.125" -> 1/8), or a fraction "3/4" / "-6/8"
// (spaces around '/' allowed). Surrounding whitespace is ignored. ASCII digits only (Unicode
// digits are not numbers here). nullopt for anything else or when the value does not fit.
std::optional<Rational> ParseNumber(std::string_view text);

// Parses an optionally signed decimal integer (ASCII digits, optional thousands commas,
// surrounding whitespace ignored); nullopt on anything else or overflow.
std::optional<int64_t> ParseInteger(std::string_view text);

// Trims ASCII whitespace at both ends.
std::string_view TrimSpace(std::string_view s);

}  // namespace r1::rl
