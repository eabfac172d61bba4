#include "rl/answer.h"

#include <gtest/gtest.h>

#include <string>

namespace r1::rl {
namespace {

std::string X(std::string_view s) { return ExtractAnswer(s).value_or("<none>"); }

TEST(ExtractAnswerTest, Basic) {
  EXPECT_EQ(X("reasoning</think>\n\nThe answer is \\boxed{132}."), "132");
  EXPECT_EQ(X("\\boxed{ 42 }"), "42");
  EXPECT_EQ(X("no box here"), "<none>");
  EXPECT_EQ(X(""), "<none>");
  EXPECT_EQ(X("\\boxed{}"), "");
}

TEST(ExtractAnswerTest, NestedBraces) {
  EXPECT_EQ(X("\\boxed{\\frac{3}{4}}"), "\\frac{3}{4}");
  EXPECT_EQ(X("\\boxed{{1, 2}, {3}}"), "{1, 2}, {3}");
  // A box inside a box is part of the outer box's text.
  EXPECT_EQ(X("\\boxed{\\boxed{3}}"), "\\boxed{3}");
  EXPECT_EQ(X("\\boxed{a \\boxed{3} b}"), "a \\boxed{3} b");
}

TEST(ExtractAnswerTest, LastBoxWins) {
  EXPECT_EQ(X("\\boxed{1} or \\boxed{2}"), "2");
  EXPECT_EQ(X("</think>\\boxed{1}, no wait \\boxed{2}"), "2");
}

TEST(ExtractAnswerTest, OnlyAfterThinkWhenPresent) {
  EXPECT_EQ(X("maybe \\boxed{1}</think>so \\boxed{2}"), "2");
  EXPECT_EQ(X("maybe \\boxed{1}</think>no answer"), "<none>");
  // Several </think>: the part after the last.
  EXPECT_EQ(X("a</think>\\boxed{1}</think>\\boxed{2}"), "2");
  EXPECT_EQ(X("a</think>\\boxed{1}</think>"), "<none>");
  // Without </think> (cut off while thinking) the whole text is searched.
  EXPECT_EQ(X("still thinking \\boxed{7}"), "7");
}

TEST(ExtractAnswerTest, Unbalanced) {
  EXPECT_EQ(X("\\boxed{12"), "<none>");
  EXPECT_EQ(X("\\boxed{1} then \\boxed{2"), "1");
  EXPECT_EQ(X("\\boxed{ \\boxed{5}"), "5");
  EXPECT_EQ(X("\\boxed{3}}}"), "3");
  EXPECT_EQ(X("}}}\\boxed{3}"), "3");
  EXPECT_EQ(X("\\boxed{{3}"), "<none>");
  EXPECT_EQ(X("\\boxed"), "<none>");
  EXPECT_EQ(X("\\boxed 3"), "<none>");
}

TEST(ExtractAnswerTest, HugeInputIsLinear) {
  std::string s;
  for (int i = 0; i < 200000; ++i) s += "\\boxed{";
  EXPECT_EQ(X(s), "<none>");
  EXPECT_EQ(X(s + "9}"), "9");
}

}  // namespace
}  // namespace r1::rl
