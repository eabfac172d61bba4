#include "rl/expression.h"

#include <string>

namespace r1::rl {
namespace {

enum class TokenKind { kNumber, kPlus, kMinus, kTimes, kDivide, kOpen, kClose, kEnd };

struct Token {
  TokenKind kind;
  int64_t value = 0;
};

// Splits `text` into tokens; fails on any character outside the grammar.
Status Lex(std::string_view text, const ExpressionLimits& limits, std::vector<Token>* out) {
  size_t i = 0;
  auto starts = [&](std::string_view s) { return text.substr(i, s.size()) == s; };
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
    } else if (c >= '0' && c <= '9') {
      int64_t v = 0;
      int digits = 0;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        if (++digits > limits.max_digits) return InvalidArgument("number too long");
        v = v * 10 + (text[i] - '0');
        ++i;
      }
      if (i < text.size() && (text[i] == '.' || text[i] == ',')) return InvalidArgument("only whole numbers are allowed");
      out->push_back({TokenKind::kNumber, v});
    } else if (c == '+') {
      out->push_back({TokenKind::kPlus}), ++i;
    } else if (c == '-') {
      out->push_back({TokenKind::kMinus}), ++i;
    } else if (c == '*' || c == 'x' || c == 'X') {
      out->push_back({TokenKind::kTimes}), ++i;
    } else if (c == '/') {
      out->push_back({TokenKind::kDivide}), ++i;
    } else if (c == '(') {
      out->push_back({TokenKind::kOpen}), ++i;
    } else if (c == ')') {
      out->push_back({TokenKind::kClose}), ++i;
    } else if (starts("\u00d7") || starts("\u00b7")) {
      out->push_back({TokenKind::kTimes}), i += 2;
    } else if (starts("\u00f7")) {
      out->push_back({TokenKind::kDivide}), i += 2;
    } else if (starts("\u2212")) {
      out->push_back({TokenKind::kMinus}), i += 3;
    } else {
      return InvalidArgument("unexpected character '" + std::string(1, c) + "'");
    }
  }
  out->push_back({TokenKind::kEnd});
  return Status::Ok();
}

// Recursive descent:  expr := term (('+'|'-') term)* ; term := primary (('*'|'/') primary)* ;
// primary := number | '(' expr ')'.
class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const ExpressionLimits& limits, std::vector<int64_t>* numbers)
      : tokens_(tokens), limits_(limits), numbers_(numbers) {}

  Result<Rational> Parse() {
    R1_ASSIGN_OR_RETURN(Rational v, Expr(0));
    if (Peek() == TokenKind::kClose) return InvalidArgument("unbalanced parentheses");
    if (Peek() != TokenKind::kEnd) return InvalidArgument("unexpected token after the expression");
    return v;
  }

 private:
  TokenKind Peek() const { return tokens_[pos_].kind; }

  Result<Rational> Expr(int depth) {
    R1_ASSIGN_OR_RETURN(Rational acc, Term(depth));
    while (Peek() == TokenKind::kPlus || Peek() == TokenKind::kMinus) {
      const bool plus = Peek() == TokenKind::kPlus;
      ++pos_;
      R1_ASSIGN_OR_RETURN(Rational rhs, Term(depth));
      const std::optional<Rational> r = plus ? Add(acc, rhs) : Sub(acc, rhs);
      if (!r) return InvalidArgument("value out of range");
      acc = *r;
    }
    return acc;
  }

  Result<Rational> Term(int depth) {
    R1_ASSIGN_OR_RETURN(Rational acc, Primary(depth));
    while (Peek() == TokenKind::kTimes || Peek() == TokenKind::kDivide) {
      const bool times = Peek() == TokenKind::kTimes;
      ++pos_;
      R1_ASSIGN_OR_RETURN(Rational rhs, Primary(depth));
      if (!times && rhs.num() == 0) return InvalidArgument("division by zero");
      const std::optional<Rational> r = times ? Mul(acc, rhs) : Div(acc, rhs);
      if (!r) return InvalidArgument("value out of range");
      acc = *r;
    }
    return acc;
  }

  Result<Rational> Primary(int depth) {
    const Token& t = tokens_[pos_];
    if (t.kind == TokenKind::kNumber) {
      ++pos_;
      if (static_cast<int>(numbers_->size()) >= limits_.max_numbers) return InvalidArgument("too many numbers");
      numbers_->push_back(t.value);
      return Rational(t.value);
    }
    if (t.kind == TokenKind::kOpen) {
      if (depth + 1 > limits_.max_depth) return InvalidArgument("parentheses nested too deeply");
      ++pos_;
      R1_ASSIGN_OR_RETURN(Rational v, Expr(depth + 1));
      if (Peek() != TokenKind::kClose) return InvalidArgument("unbalanced parentheses");
      ++pos_;
      return v;
    }
    if (t.kind == TokenKind::kMinus) return InvalidArgument("unary minus is not allowed");
    if (t.kind == TokenKind::kEnd) return InvalidArgument("expression ends early");
    if (t.kind == TokenKind::kClose) return InvalidArgument("unbalanced parentheses");
    return InvalidArgument("operator without a left operand");
  }

  const std::vector<Token>& tokens_;
  const ExpressionLimits& limits_;
  std::vector<int64_t>* numbers_;
  size_t pos_ = 0;
};

}  // namespace

Result<EvaluatedExpression> EvaluateExpression(std::string_view text, const ExpressionLimits& limits) {
  if (text.size() > limits.max_chars) return InvalidArgument("expression too long");
  std::vector<Token> tokens;
  R1_RETURN_IF_ERROR(Lex(text, limits, &tokens));
  if (tokens.size() == 1) return InvalidArgument("empty expression");
  EvaluatedExpression out;
  Parser parser(tokens, limits, &out.numbers);
  R1_ASSIGN_OR_RETURN(out.value, parser.Parse());
  return out;
}

}  // namespace r1::rl
