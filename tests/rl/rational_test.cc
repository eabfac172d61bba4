#include "rl/rational.h"

#include <gtest/gtest.h>

#include <limits>

namespace r1::rl {
namespace {

Rational Q(int64_t n, int64_t d) { return *Rational::Make(n, d); }

TEST(RationalTest, LowestTermsAndSign) {
  EXPECT_EQ(Q(6, 8), Q(3, 4));
  EXPECT_EQ(Q(3, -4), Q(-3, 4));
  EXPECT_EQ(Q(-6, -8).ToString(), "3/4");
  EXPECT_EQ(Q(0, 5), Rational(0));
  EXPECT_EQ(Q(0, -5).den(), 1);
  EXPECT_FALSE(Rational::Make(1, 0).has_value());
  EXPECT_FALSE(Rational::Make(std::numeric_limits<int64_t>::min(), 1).has_value());
}

TEST(RationalTest, ExactArithmetic) {
  const Rational seven_thirds = *Div(7, 3);
  EXPECT_EQ(*Mul(seven_thirds, 3), Rational(7));
  EXPECT_TRUE(Mul(seven_thirds, 3)->is_integer());
  // 1/3 + 1/3 + 1/3 == 1 exactly (a double sum would not be).
  Rational third = Q(1, 3);
  EXPECT_EQ(*Add(*Add(third, third), third), Rational(1));
  EXPECT_EQ(*Sub(Q(1, 2), Q(1, 3)), Q(1, 6));
  EXPECT_EQ(*Div(Q(3, 4), Q(9, 8)), Q(2, 3));
  // 8 / (3 - 8/3) = 24.
  EXPECT_EQ(*Div(8, *Sub(3, Q(8, 3))), Rational(24));
}

TEST(RationalTest, DivisionByZeroAndOverflowAreNullopt) {
  EXPECT_FALSE(Div(5, 0).has_value());
  const Rational big(std::numeric_limits<int64_t>::max());
  EXPECT_FALSE(Mul(big, 2).has_value());
  EXPECT_FALSE(Add(big, 1).has_value());
  EXPECT_FALSE(Sub(Rational(-std::numeric_limits<int64_t>::max()), 2).has_value());
  // Large intermediates that reduce back into range are fine (128-bit products).
  EXPECT_EQ(Mul(Q(1, 3'000'000'000), Q(1, 3'000'000'000))->den(), 9'000'000'000'000'000'000);
  EXPECT_FALSE(Mul(Q(1, 4'000'000'000), Q(1, 4'000'000'000)).has_value());
  EXPECT_EQ(*Mul(Q(3'000'000'000, 7), Q(7, 3'000'000'000)), Rational(1));
}

TEST(RationalTest, ParseNumber) {
  EXPECT_EQ(*ParseNumber("42"), Rational(42));
  EXPECT_EQ(*ParseNumber("  -42 \n"), Rational(-42));
  EXPECT_EQ(*ParseNumber("+7"), Rational(7));
  EXPECT_EQ(*ParseNumber("1,234,567"), Rational(1234567));
  EXPECT_EQ(*ParseNumber("0.125"), Q(1, 8));
  EXPECT_EQ(*ParseNumber("-2.50"), Q(-5, 2));
  EXPECT_EQ(*ParseNumber(".5"), Q(1, 2));
  EXPECT_EQ(*ParseNumber("3/4"), Q(3, 4));
  EXPECT_EQ(*ParseNumber("6 / 8"), Q(3, 4));
  EXPECT_EQ(*ParseNumber("-6/8"), Q(-3, 4));
  EXPECT_EQ(*ParseNumber("1,000.5"), Q(2001, 2));
  for (const char* bad : {"", " ", "-", "abc", "1.", "1..2", "1,23", "12,3456", ",123", "1/0", "3/-4", "1/2/3",
                          "0x10", "1e5", "5 apples", "\xef\xbc\x94\xef\xbc\x96" /* fullwidth 46 */,
                          "\xd9\xa4\xd9\xa6" /* Arabic-Indic 46 */, "99999999999999999999",
                          "0.1234567890123456789", "1 2"})
    EXPECT_FALSE(ParseNumber(bad).has_value()) << bad;
}

TEST(RationalTest, ParseInteger) {
  EXPECT_EQ(*ParseInteger("-656"), -656);
  EXPECT_EQ(*ParseInteger(" 12,345 "), 12345);
  EXPECT_EQ(*ParseInteger("9223372036854775807"), std::numeric_limits<int64_t>::max());
  EXPECT_FALSE(ParseInteger("9223372036854775808").has_value());
  EXPECT_FALSE(ParseInteger("1.0").has_value());
  EXPECT_FALSE(ParseInteger("--1").has_value());
}

}  // namespace
}  // namespace r1::rl
