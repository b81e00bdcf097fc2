// Tokens and syntax tree of the chat-template language (the Jinja subset that
// @huggingface/jinja implements), and the lexer/parser that produce them.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace kiln::chat {

enum class Tok {
  text,
  number,
  string,
  identifier,
  equals,
  open_paren,
  close_paren,
  open_statement,
  close_statement,
  open_expression,
  close_expression,
  open_square,
  close_square,
  open_curly,
  close_curly,
  comma,
  dot,
  colon,
  pipe,
  additive,
  multiplicative,
  power,
  comparison,
  unary,
  comment
};

struct Token {
  Tok type;
  std::string value;
  uint32_t offset;  // byte offset in the original template source
};

// Reports a syntax error at a byte offset of the original source (throws).
using ErrorAt = void (*)(const void* ctx, uint32_t offset, const std::string& what);
// "line:column" of a byte offset.
using LocateAt = std::string (*)(const void* ctx, uint32_t offset);
struct SourceRef {
  const void* ctx;
  ErrorAt fail;
  LocateAt locate;
  [[noreturn]] void error(uint32_t offset, const std::string& what) const {
    fail(ctx, offset, what);
    std::abort();  // unreachable: fail always throws
  }
};

// trim_blocks + lstrip_blocks (the HF defaults), then tokens.
std::vector<Token> lex(const std::string& source, const SourceRef& where);

enum class N {
  // statements
  text,
  comment,
  if_,
  for_,
  set,
  macro,
  call_block,
  break_,
  continue_,
  filter_block,
  // expressions
  integer,
  floating,
  string,
  identifier,
  array,
  tuple,
  object,
  member,
  slice,
  call,
  kwarg,
  spread,
  kwspread,
  unary,
  binary,
  filter,
  test,
  select,
  ternary
};

struct Node;
using NodePtr = std::unique_ptr<Node>;

// One node type for the whole tree; what the fields mean depends on `kind`:
//   text/string: str;  integer/floating: number;  identifier: str (name)
//   if_: a[0] test, body, alt;  for_: a[0] target, a[1] iterable, a[2] filter
//        test (may be null), body, alt (the else block)
//   set: a[0] target, a[1] value (null: block set with body)
//   macro: str name, a parameters, body;  call_block: a[0] the call, b caller params
//   filter_block: a[0] filter (identifier or call), body
//   array/tuple: a;  object: a = key, value, key, value...
//   member: a[0] object, a[1] property, flag computed;  slice: a[0..2], null if absent
//   call: a[0] callee, b args;  kwarg: str key, a[0] value;  spread/kwspread: a[0]
//   unary/binary: str operator, a operands;  filter: a[0] operand, a[1] filter
//   test: a[0] operand, str test name, flag negated;  select: a[0] value, a[1] test
//   ternary: a[0] condition, a[1] if true, a[2] if false
struct Node {
  N kind;
  uint32_t offset = 0;
  std::string str;
  double number = 0;
  bool flag = false;
  std::vector<NodePtr> a, b, body, alt;
};

// The whole template as a list of statements.
std::vector<NodePtr> parse(const std::vector<Token>& tokens, uint32_t end_offset,
                           const SourceRef& where);

}  // namespace kiln::chat
