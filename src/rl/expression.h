// Arithmetic expressions over integers with + - * / and parentheses, evaluated exactly (Rational),
// for the Countdown verifier. Accepted spellings: '*', 'x', 'X', '×' (U+00D7) and '·' (U+00B7)
// multiply; '/' and '÷' (U+00F7) divide; '-' and '−' (U+2212) subtract. Binary operators only
// (no unary minus: negating is not one of the allowed operations), ASCII digits only, no decimals.
//
// Untrusted input: the text length, the nesting depth and the count of numbers are capped, every
// intermediate result is overflow-checked, and division by zero is an error, so any string is
// answered in time linear in its length without crashing.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "rl/rational.h"

namespace r1::rl {

struct ExpressionLimits {
  size_t max_chars = 256;
  int max_depth = 16;     // parentheses nesting
  int max_numbers = 16;   // literals in the expression
  int max_digits = 9;     // per literal
};

struct EvaluatedExpression {
  Rational value;
  std::vector<int64_t> numbers;  // the literals, in order of appearance
};

// Errors are InvalidArgument with a short reason ("unbalanced parentheses", "division by zero", ...).
Result<EvaluatedExpression> EvaluateExpression(std::string_view text, const ExpressionLimits& limits = {});

}  // namespace r1::rl
