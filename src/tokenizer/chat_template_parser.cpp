// Chat-template parser: recursive descent with @huggingface/jinja's grammar
// and precedence (filters bind tighter than unary minus, `is` tighter than
// `*`, commas optional in list literals), so every template it accepts parses
// the same way here. Nesting is capped so hostile input cannot exhaust the stack.
#include "tokenizer/chat_template_parser.h"

namespace kiln::chat {
namespace detail {

NodePtr Parser::any() {
  Deeper guard(*this);
  if (cur >= t.size()) fail("unexpected end of template");
  const Token& tok = t[cur];
  switch (tok.type) {
    case Tok::comment:
    case Tok::text: {
      auto n = node(tok.type == Tok::text ? N::text : N::comment, tok.offset);
      n->str = tok.value;
      ++cur;
      return n;
    }
    case Tok::open_statement:
      return statement();
    case Tok::open_expression: {
      ++cur;
      NodePtr e = expression();
      expect(Tok::close_expression, "\"}}\"");
      return e;
    }
    default:
      fail("unexpected token \"" + tok.value + "\"");
  }
}

NodePtr Parser::statement() {
  ++cur;  // {%
  if (!is(Tok::identifier)) fail("expected a statement name");
  const Token& name = t[cur++];
  const std::string& s = name.value;
  if (s == "set") return set_statement(name.offset);
  if (s == "if") {
    NodePtr n = if_statement(name.offset);
    end_tag("endif");
    return n;
  }
  if (s == "for") {
    NodePtr n = for_statement(name.offset);
    end_tag("endfor");
    return n;
  }
  if (s == "macro") {
    NodePtr n = macro_statement(name.offset);
    end_tag("endmacro");
    return n;
  }
  if (s == "call") return call_statement(name.offset);
  if (s == "filter") return filter_statement(name.offset);
  if (s == "break" || s == "continue") {
    expect(Tok::close_statement, "\"%}\"");
    return node(s == "break" ? N::break_ : N::continue_, name.offset);
  }
  --cur;
  fail("unknown statement \"" + s + "\"");
}

NodePtr Parser::set_statement(uint32_t at) {
  auto n = node(N::set, at);
  n->a.push_back(sequence(false));
  if (is(Tok::equals)) {
    ++cur;
    n->a.push_back(sequence(false));
  } else {
    n->a.push_back(nullptr);
    expect(Tok::close_statement, "\"%}\"");
    block_until(n->body, {"endset"}, "endset", *n);
    expect(Tok::open_statement, "{% endset %}");
    expect_ident("endset");
  }
  expect(Tok::close_statement, "\"%}\"");
  return n;
}

NodePtr Parser::if_statement(uint32_t at) {
  auto n = node(N::if_, at);
  n->a.push_back(expression());
  expect(Tok::close_statement, "\"%}\"");
  block_until(n->body, {"elif", "else", "endif"}, "endif", *n);
  if (is_statement({"elif"})) {
    cur += 2;
    Deeper guard(*this);
    n->alt.push_back(if_statement(t[cur - 1].offset));
  } else if (is_statement({"else"})) {
    cur += 2;
    expect(Tok::close_statement, "\"%}\"");
    block_until(n->alt, {"endif"}, "endif", *n);
  }
  return n;
}

NodePtr Parser::for_statement(uint32_t at) {
  auto n = node(N::for_, at);
  NodePtr target = sequence(true);
  if (target->kind != N::identifier && target->kind != N::tuple)
    fail("expected a name or tuple as the loop variable");
  n->a.push_back(std::move(target));
  if (!is_ident("in")) fail("expected \"in\" after the loop variable");
  ++cur;
  NodePtr iterable = expression();
  if (iterable->kind == N::select) {  // for x in xs if cond
    n->a.push_back(std::move(iterable->a[0]));
    n->a.push_back(std::move(iterable->a[1]));
  } else {
    n->a.push_back(std::move(iterable));
    n->a.push_back(nullptr);
  }
  expect(Tok::close_statement, "\"%}\"");
  block_until(n->body, {"endfor", "else"}, "endfor", *n);
  if (is_statement({"else"})) {
    cur += 2;
    expect(Tok::close_statement, "\"%}\"");
    block_until(n->alt, {"endfor"}, "endfor", *n);
  }
  return n;
}

NodePtr Parser::macro_statement(uint32_t at) {
  auto n = node(N::macro, at);
  NodePtr name = primary();
  if (name->kind != N::identifier) fail("expected a macro name");
  n->str = name->str;
  args(n->a, true);
  expect(Tok::close_statement, "\"%}\"");
  block_until(n->body, {"endmacro"}, "endmacro", *n);
  return n;
}

NodePtr Parser::call_statement(uint32_t at) {
  auto n = node(N::call_block, at);
  if (is(Tok::open_paren)) args(n->b, true);
  const uint32_t callee_at = offset();
  NodePtr callee = primary();
  if (callee->kind != N::identifier) fail("expected a macro name after \"call\"");
  auto c = node(N::call, callee_at);
  c->a.push_back(std::move(callee));
  args(c->b, false);
  n->a.push_back(std::move(c));
  expect(Tok::close_statement, "\"%}\"");
  block_until(n->body, {"endcall"}, "endcall", *n);
  end_tag("endcall");
  return n;
}

NodePtr Parser::filter_statement(uint32_t at) {
  auto n = node(N::filter_block, at);
  NodePtr f = primary();
  if (f->kind == N::identifier && is(Tok::open_paren)) f = call(std::move(f));
  n->a.push_back(std::move(f));
  expect(Tok::close_statement, "\"%}\"");
  block_until(n->body, {"endfilter"}, "endfilter", *n);
  end_tag("endfilter");
  return n;
}

// `a, b, c` becomes a tuple; one expression stays itself.
NodePtr Parser::sequence(bool primary_only) {
  const uint32_t at = offset();
  NodePtr first = primary_only ? primary() : expression();
  if (!is(Tok::comma)) return first;
  auto tuple = node(N::tuple, at);
  tuple->a.push_back(std::move(first));
  while (is(Tok::comma)) {
    ++cur;
    tuple->a.push_back(primary_only ? primary() : expression());
  }
  return tuple;
}

NodePtr Parser::expression() {
  Deeper guard(*this);
  const uint32_t at = offset();
  NodePtr value = logical_or();
  if (!is_ident("if")) return value;
  ++cur;
  NodePtr cond = logical_or();
  if (is_ident("else")) {
    ++cur;
    auto n = node(N::ternary, at);
    n->a.push_back(std::move(cond));
    n->a.push_back(std::move(value));
    n->a.push_back(expression());
    return n;
  }
  auto n = node(N::select, at);
  n->a.push_back(std::move(value));
  n->a.push_back(std::move(cond));
  return n;
}

NodePtr Parser::binary(NodePtr left, const Token& op, NodePtr right) {
  auto n = node(N::binary, op.offset);
  n->str = op.value;
  n->a.push_back(std::move(left));
  n->a.push_back(std::move(right));
  return n;
}

}  // namespace detail

std::vector<NodePtr> parse(const std::vector<Token>& tokens, uint32_t end_offset,
                           const SourceRef& where) {
  detail::Parser p{tokens, end_offset, where};
  std::vector<NodePtr> program;
  while (p.cur < tokens.size()) program.push_back(p.any());
  return program;
}

}  // namespace kiln::chat
