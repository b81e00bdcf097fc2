// Chat-template expressions, lowest precedence first (as @huggingface/jinja):
// ternary/select, or, and, not, comparison/in, + - ~, * / // %, **, is,
// |filter, unary sign, calls and member access, literals.
#include <cstdlib>

#include "tokenizer/chat_template_parser.h"

namespace kiln::chat::detail {

// Left-associative chains deepen the tree by one per operator; they count
// toward the nesting cap (the evaluator recurses that deep).
#define KILN_CHAIN_STEP()                                                                      \
  do {                                                                                         \
    ++chain;                                                                                   \
    if (depth + chain > kMaxDepth) fail("expression too long (more than 200 operators deep)"); \
  } while (0)

NodePtr Parser::logical_or() {
  int chain = 0;
  NodePtr left = logical_and();
  while (is_ident("or")) {
    KILN_CHAIN_STEP();
    const Token& op = t[cur++];
    left = binary(std::move(left), op, logical_and());
  }
  return left;
}

NodePtr Parser::logical_and() {
  int chain = 0;
  NodePtr left = logical_not();
  while (is_ident("and")) {
    KILN_CHAIN_STEP();
    const Token& op = t[cur++];
    left = binary(std::move(left), op, logical_not());
  }
  return left;
}

// The reference's loop: a second `not` after the operand replaces the first.
NodePtr Parser::logical_not() {
  NodePtr result;
  while (is_ident("not")) {
    Deeper guard(*this);
    const Token& op = t[cur++];
    auto n = node(N::unary, op.offset);
    n->str = "not";
    n->a.push_back(logical_not());
    result = std::move(n);
  }
  return result ? std::move(result) : comparison();
}

NodePtr Parser::comparison() {
  int chain = 0;
  NodePtr left = additive();
  while (true) {
    Token op;
    if (is_ident("not") && is_ident("in", 1)) {
      op = {Tok::identifier, "not in", t[cur].offset};
      cur += 2;
    } else if (is_ident("in") || is(Tok::comparison)) {
      op = t[cur++];
    } else {
      break;
    }
    KILN_CHAIN_STEP();
    left = binary(std::move(left), op, additive());
  }
  return left;
}

NodePtr Parser::additive() {
  int chain = 0;
  NodePtr left = multiplicative();
  while (is(Tok::additive)) {
    KILN_CHAIN_STEP();
    const Token& op = t[cur++];
    left = binary(std::move(left), op, multiplicative());
  }
  return left;
}

NodePtr Parser::multiplicative() {
  int chain = 0;
  NodePtr left = power();
  while (is(Tok::multiplicative)) {
    KILN_CHAIN_STEP();
    const Token& op = t[cur++];
    left = binary(std::move(left), op, power());
  }
  return left;
}

NodePtr Parser::power() {
  int chain = 0;
  NodePtr left = test();
  while (is(Tok::power)) {
    KILN_CHAIN_STEP();
    const Token& op = t[cur++];
    left = binary(std::move(left), op, test());
  }
  return left;
}

NodePtr Parser::test() {
  int chain = 0;
  NodePtr operand = filter();
  while (is_ident("is")) {
    KILN_CHAIN_STEP();
    auto n = node(N::test, t[cur++].offset);
    n->flag = is_ident("not");
    if (n->flag) ++cur;
    NodePtr name = primary();
    if (name->kind != N::identifier) fail("expected a test name after \"is\"");
    n->str = name->str;
    n->a.push_back(std::move(operand));
    operand = std::move(n);
  }
  return operand;
}

NodePtr Parser::filter() {
  int chain = 0;
  NodePtr operand = unary_sign();
  while (is(Tok::pipe)) {
    KILN_CHAIN_STEP();
    auto n = node(N::filter, t[cur++].offset);
    NodePtr f = primary();
    if (f->kind != N::identifier) fail("expected a filter name after \"|\"");
    if (is(Tok::open_paren)) f = call(std::move(f));
    n->a.push_back(std::move(operand));
    n->a.push_back(std::move(f));
    operand = std::move(n);
  }
  return operand;
}

NodePtr Parser::unary_sign() {
  if ((is(Tok::unary) || is(Tok::additive)) && (t[cur].value == "-" || t[cur].value == "+")) {
    Deeper guard(*this);
    auto n = node(N::unary, t[cur].offset);
    n->str = t[cur++].value;
    n->a.push_back(unary_sign());
    return n;
  }
  return call_member();
}

NodePtr Parser::call_member() {
  NodePtr m = member(primary());
  return is(Tok::open_paren) ? call(std::move(m)) : std::move(m);
}

NodePtr Parser::call(NodePtr callee) {
  Deeper guard(*this);
  auto n = node(N::call, callee->offset);  // errors in a call point at the callee's name
  n->a.push_back(std::move(callee));
  args(n->b, false);
  NodePtr expr = member(std::move(n));
  return is(Tok::open_paren) ? call(std::move(expr)) : std::move(expr);
}

// (a, b=1, *xs, **kw); `parameters` for macro/call-block declarations.
void Parser::args(std::vector<NodePtr>& out, bool parameters) {
  expect(Tok::open_paren, "\"(\"");
  bool keyword_seen = false, spread_seen = false;
  std::vector<std::string> names;
  while (!is(Tok::close_paren)) {
    if (cur >= t.size()) fail("unexpected end of template (expected \")\")");
    const bool kwspread = is(Tok::power);
    const bool spread = is(Tok::multiplicative) && t[cur].value == "*";
    if (parameters && (kwspread || spread)) fail("argument unpacking in a parameter list");
    const uint32_t at = offset();
    if (kwspread) {
      ++cur;
      auto n = node(N::kwspread, at);
      n->a.push_back(expression());
      out.push_back(std::move(n));
      if (is(Tok::comma)) ++cur;
      if (!is(Tok::close_paren)) fail("\"**\" must be applied to the last argument");
      break;
    }
    NodePtr arg;
    if (spread) {
      if (spread_seen) fail("only one \"*\" argument unpacking is allowed");
      spread_seen = true;
      ++cur;
      arg = node(N::spread, at);
      arg->a.push_back(expression());
    } else {
      arg = expression();
      if (is(Tok::equals)) {
        ++cur;
        if (arg->kind != N::identifier) fail("expected a name before \"=\"");
        auto kw = node(N::kwarg, at);
        kw->str = arg->str;
        kw->a.push_back(expression());
        arg = std::move(kw);
      }
      if (parameters) {
        if (arg->kind != N::identifier && arg->kind != N::kwarg) fail("expected a parameter name");
        for (const auto& name : names)
          if (name == arg->str) fail("duplicate parameter \"" + name + "\"");
        names.push_back(arg->str);
      }
      if (arg->kind == N::kwarg)
        keyword_seen = true;
      else if (keyword_seen)
        fail(parameters ? "non-default parameter after a default one"
                        : "positional argument after a keyword argument");
      else if (spread_seen)
        fail("positional argument after \"*\" unpacking");
    }
    out.push_back(std::move(arg));
    if (is(Tok::comma)) ++cur;
  }
  ++cur;  // )
}

NodePtr Parser::member(NodePtr object) {
  int chain = 0;
  while (is(Tok::dot) || is(Tok::open_square)) {
    KILN_CHAIN_STEP();
    auto n = node(N::member, t[cur].offset);
    n->flag = is(Tok::open_square);
    ++cur;
    NodePtr property;
    if (n->flag) {
      property = subscript();
      expect(Tok::close_square, "\"]\"");
    } else {
      property = primary();
      if (property->kind != N::identifier && property->kind != N::integer)
        fail("expected a name or an integer after \".\"");
    }
    n->a.push_back(std::move(object));
    n->a.push_back(std::move(property));
    object = std::move(n);
  }
  return object;
}

// [i] or a slice [start:stop:step] (each part optional).
NodePtr Parser::subscript() {
  const uint32_t at = offset();
  std::vector<NodePtr> parts;
  bool slice = false;
  while (!is(Tok::close_square)) {
    if (cur >= t.size()) fail("unexpected end of template (expected \"]\")");
    if (is(Tok::colon)) {
      parts.push_back(nullptr);
      ++cur;
      slice = true;
    } else {
      parts.push_back(expression());
      if (is(Tok::colon)) {
        ++cur;
        slice = true;
      }
    }
  }
  if (parts.empty()) fail("expected an index or a slice inside \"[]\"");
  if (!slice) return std::move(parts[0]);
  if (parts.size() > 3) fail("a slice has at most 3 parts");
  auto n = node(N::slice, at);
  parts.resize(3);
  n->a = std::move(parts);
  return n;
}

NodePtr Parser::primary() {
  Deeper guard(*this);
  if (cur >= t.size()) fail("unexpected end of template (expected an expression)");
  const Token& tok = t[cur++];
  switch (tok.type) {
    case Tok::number: {
      const bool dot = tok.value.find('.') != std::string::npos;
      auto n = node(dot ? N::floating : N::integer, tok.offset);
      n->number = std::strtod(tok.value.c_str(), nullptr);
      return n;
    }
    case Tok::string: {
      auto n = node(N::string, tok.offset);
      n->str = tok.value;
      while (is(Tok::string)) n->str += t[cur++].value;  // 'a' 'b' is 'ab'
      return n;
    }
    case Tok::identifier: {
      auto n = node(N::identifier, tok.offset);
      n->str = tok.value;
      return n;
    }
    case Tok::open_paren: {
      NodePtr e = sequence(false);
      expect(Tok::close_paren, "\")\"");
      return e;
    }
    case Tok::open_square:
    case Tok::open_curly: {
      const bool list = tok.type == Tok::open_square;
      auto n = node(list ? N::array : N::object, tok.offset);
      const Tok close = list ? Tok::close_square : Tok::close_curly;
      while (!is(close)) {
        if (cur >= t.size()) fail(list ? "unclosed \"[\"" : "unclosed \"{\"");
        n->a.push_back(expression());
        if (!list) {
          expect(Tok::colon, "\":\" between a key and its value");
          n->a.push_back(expression());
        }
        if (is(Tok::comma)) ++cur;
      }
      ++cur;
      return n;
    }
    default:
      --cur;
      fail("unexpected \"" + tok.value + "\" (expected an expression)");
  }
}

}  // namespace kiln::chat::detail
