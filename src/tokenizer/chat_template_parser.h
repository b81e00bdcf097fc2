// The chat-template parser's state, shared by its statement half
// (chat_template_parser.cpp) and expression half (chat_template_parser_expr.cpp).
#pragma once
#include <string>
#include <vector>

#include "tokenizer/chat_template_ast.h"

namespace kiln::chat::detail {

constexpr int kMaxDepth = 200;

struct Parser {
  const std::vector<Token>& t;
  uint32_t end_offset;
  const SourceRef& where;
  size_t cur = 0;
  int depth = 0;

  struct Deeper {
    Parser& p;
    explicit Deeper(Parser& parser, int by = 1) : p(parser) {
      p.depth += by;
      if (p.depth > kMaxDepth) p.fail("template nested too deeply (more than 200 levels)");
    }
    ~Deeper() { p.depth--; }
  };

  uint32_t offset() const { return cur < t.size() ? t[cur].offset : end_offset; }
  [[noreturn]] void fail(const std::string& what) { where.error(offset(), what); }
  bool is(Tok type, size_t ahead = 0) const {
    return cur + ahead < t.size() && t[cur + ahead].type == type;
  }
  bool is_ident(const char* name, size_t ahead = 0) const {
    return is(Tok::identifier, ahead) && t[cur + ahead].value == name;
  }
  bool is_statement(std::initializer_list<const char*> names) const {
    if (!is(Tok::open_statement) || !is(Tok::identifier, 1)) return false;
    for (const char* n : names)
      if (t[cur + 1].value == n) return true;
    return false;
  }
  const Token& expect(Tok type, const char* what) {
    if (!is(type))
      fail(cur < t.size() ? std::string("expected ") + what
                          : "unexpected end of template (expected " + std::string(what) + ")");
    return t[cur++];
  }
  void expect_ident(const char* name) {
    if (!is_ident(name)) fail(std::string("expected \"") + name + "\"");
    ++cur;
  }
  NodePtr node(N kind, uint32_t at) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->offset = at;
    return n;
  }
  void end_tag(const char* name) {
    expect(Tok::open_statement, (std::string("{% ") + name + " %}").c_str());
    expect_ident(name);
    expect(Tok::close_statement, "\"%}\"");
  }
  // Statements until one of `stops` ({% stop %}); the closer is left unread.
  void block_until(std::vector<NodePtr>& out, std::initializer_list<const char*> stops,
                   const char* closer, const Node& opener) {
    while (!is_statement(stops)) {
      if (cur >= t.size())
        fail(std::string("unclosed block (expected {% ") + closer + " %} for the \"" +
             std::string(closer + 3) + "\" at " + where.locate(where.ctx, opener.offset) + ")");
      out.push_back(any());
    }
  }

  NodePtr any();
  NodePtr statement();
  NodePtr set_statement(uint32_t at);
  NodePtr if_statement(uint32_t at);
  NodePtr for_statement(uint32_t at);
  NodePtr macro_statement(uint32_t at);
  NodePtr call_statement(uint32_t at);
  NodePtr filter_statement(uint32_t at);
  NodePtr sequence(bool primary_only);
  NodePtr expression();
  NodePtr logical_or();
  NodePtr logical_and();
  NodePtr logical_not();
  NodePtr comparison();
  NodePtr additive();
  NodePtr multiplicative();
  NodePtr power();
  NodePtr test();
  NodePtr filter();
  NodePtr unary_sign();
  NodePtr call_member();
  NodePtr call(NodePtr callee);
  void args(std::vector<NodePtr>& out, bool parameters);
  NodePtr member(NodePtr object);
  NodePtr subscript();
  NodePtr primary();
  NodePtr binary(NodePtr left, const Token& op, NodePtr right);
};

}  // namespace kiln::chat::detail
