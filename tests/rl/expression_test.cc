#include "rl/expression.h"

#include <gtest/gtest.h>

#include <string>

namespace r1::rl {
namespace {

Rational Eval(const std::string& s) {
  Result<EvaluatedExpression> e = EvaluateExpression(s);
  EXPECT_TRUE(e.ok()) << s << ": " << e.status().ToString();
  return e.ok() ? e->value : Rational(-999999);
}

std::string Error(const std::string& s) {
  Result<EvaluatedExpression> e = EvaluateExpression(s);
  return e.ok() ? "ok" : e.status().message();
}

TEST(ExpressionTest, PrecedenceAndAssociativity) {
  EXPECT_EQ(Eval("7*3+25"), Rational(46));
  EXPECT_EQ(Eval("25+7*3"), Rational(46));
  EXPECT_EQ(Eval("(25+7)*3"), Rational(96));
  EXPECT_EQ(Eval("100-50-25"), Rational(25));
  EXPECT_EQ(Eval("100/5/4"), Rational(5));
  EXPECT_EQ(Eval("100-(50-25)"), Rational(75));
  EXPECT_EQ(Eval(" ( ( 4 ) ) "), Rational(4));
}

TEST(ExpressionTest, ExactRationalIntermediates) {
  EXPECT_EQ(Eval("7/3*3"), Rational(7));
  EXPECT_EQ(Eval("8/(3-8/3)"), Rational(24));
  EXPECT_EQ(Eval("1/3+1/3+1/3"), Rational(1));
  EXPECT_EQ(Eval("7/2"), *Rational::Make(7, 2));
}

TEST(ExpressionTest, AlternativeOperatorSpellings) {
  EXPECT_EQ(Eval("7x3+25"), Rational(46));
  EXPECT_EQ(Eval("7 X 3"), Rational(21));
  EXPECT_EQ(Eval("7\u00d73"), Rational(21));
  EXPECT_EQ(Eval("7\u00b73"), Rational(21));
  EXPECT_EQ(Eval("21\u00f73"), Rational(7));
  EXPECT_EQ(Eval("21\u22123"), Rational(18));
}

TEST(ExpressionTest, RecordsNumbersInOrder) {
  Result<EvaluatedExpression> e = EvaluateExpression("(25 - 3) * 7");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->numbers, (std::vector<int64_t>{25, 3, 7}));
}

TEST(ExpressionTest, Malformed) {
  EXPECT_EQ(Error(""), "empty expression");
  EXPECT_EQ(Error("   "), "empty expression");
  EXPECT_EQ(Error("(1+2"), "unbalanced parentheses");
  EXPECT_EQ(Error("1+2)"), "unbalanced parentheses");
  EXPECT_EQ(Error(")("), "unbalanced parentheses");
  EXPECT_EQ(Error("()"), "unbalanced parentheses");
  EXPECT_EQ(Error("1+"), "expression ends early");
  EXPECT_EQ(Error("*2"), "operator without a left operand");
  EXPECT_EQ(Error("1**2"), "operator without a left operand");
  EXPECT_EQ(Error("-3+5"), "unary minus is not allowed");
  EXPECT_EQ(Error("3+-5"), "unary minus is not allowed");
  EXPECT_EQ(Error("1 2"), "unexpected token after the expression");
  EXPECT_EQ(Error("2(3)"), "unexpected token after the expression");
  EXPECT_EQ(Error("2.5*2"), "only whole numbers are allowed");
  EXPECT_EQ(Error("1,000+1"), "only whole numbers are allowed");
  EXPECT_EQ(Error("2^3"), "unexpected character '^'");
  EXPECT_EQ(Error("a+b"), "unexpected character 'a'");
  EXPECT_EQ(Error("\xef\xbc\x94+1"), "unexpected character '\xef'");  // fullwidth digit
  EXPECT_EQ(Error("1+2=3"), "unexpected character '='");
}

TEST(ExpressionTest, DivisionByZero) {
  EXPECT_EQ(Error("5/0"), "division by zero");
  EXPECT_EQ(Error("5/(3-3)"), "division by zero");
  EXPECT_EQ(Error("0/5"), "ok");
}

TEST(ExpressionTest, HugeInputsAreRejectedQuickly) {
  EXPECT_EQ(Error("1234567890*2"), "number too long");
  EXPECT_EQ(Error("999999999*999999999*999999999*999999999"), "value out of range");
  EXPECT_EQ(Error(std::string(300, '1')), "expression too long");
  EXPECT_EQ(Error(std::string(1 << 20, '(')), "expression too long");
  std::string deep = std::string(40, '(') + "1" + std::string(40, ')');
  EXPECT_EQ(Error(deep), "parentheses nested too deeply");
  std::string many = "1";
  for (int i = 0; i < 40; ++i) many += "+1";
  EXPECT_EQ(Error(many), "too many numbers");
  // Within the limits deep nesting still works.
  EXPECT_EQ(Eval(std::string(16, '(') + "1" + std::string(16, ')')), Rational(1));
  ExpressionLimits wide;
  wide.max_chars = 1 << 22;
  wide.max_depth = 1000;  // recursion depth is bounded by max_depth
  wide.max_numbers = 1 << 20;
  const std::string nested = std::string(1000, '(') + "1" + std::string(1000, ')');
  EXPECT_TRUE(EvaluateExpression(nested, wide).ok());
}

}  // namespace
}  // namespace r1::rl
