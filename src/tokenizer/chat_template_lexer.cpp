// Chat-template lexer. It reproduces @huggingface/jinja's tokenizer step by
// step (its preprocess regexes for trim_blocks/lstrip_blocks, its "-"/"+"
// literal rule, its whitespace control), because prompts must come out
// byte-identical. Each output byte remembers its source offset for errors.
#include <cstring>

#include "tokenizer/chat_template_ast.h"
#include "tokenizer/chat_template_value.h"

namespace kiln::chat {
namespace {

// Text plus the original offset of every byte.
struct Mapped {
  std::string s;
  std::vector<uint32_t> at;
  void push(char c, uint32_t off) {
    s += c;
    at.push_back(off);
  }
};

// strchr that does not match the terminator when c is a NUL byte.
bool one_of(char c, const char* set) { return c != '\0' && std::strchr(set, c) != nullptr; }

bool starts(const std::string& s, size_t i, const char* lit) {
  return s.compare(i, std::strlen(lit), lit) == 0;
}

// JS multiline `^`: after \n, \r, U+2028, U+2029.
bool line_start(const std::string& s, size_t i) {
  if (i == 0) return true;
  if (s[i - 1] == '\n' || s[i - 1] == '\r') return true;
  return i >= 3 && (s.compare(i - 3, 3, "\u2028") == 0 || s.compare(i - 3, 3, "\u2029") == 0);
}

// template.replace(/^[ \t]*({[#%-])/gm, "$1")
Mapped lstrip_blocks(const Mapped& in) {
  Mapped out;
  const std::string& s = in.s;
  for (size_t i = 0; i < s.size();) {
    if (line_start(s, i)) {
      size_t j = i;
      while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;
      if (j + 1 < s.size() && s[j] == '{' && one_of(s[j + 1], "#%-")) i = j;
    }
    out.push(s[i], in.at[i]);
    ++i;
  }
  return out;
}

// template.replace(/([#%-]})\n/g, "$1")
Mapped trim_blocks(const Mapped& in) {
  Mapped out;
  const std::string& s = in.s;
  for (size_t i = 0; i < s.size(); ++i) {
    out.push(s[i], in.at[i]);
    if (i + 2 < s.size() && one_of(s[i], "#%-") && s[i + 1] == '}' && s[i + 2] == '\n') {
      out.push('}', in.at[i + 1]);
      i += 2;
    }
  }
  return out;
}

// {% generation %} / {% endgeneration %} vanish (with their - trimming), as in
// /(\s*){%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs.
size_t generation_tag(const std::string& s, size_t i, bool* lstrip, bool* rstrip) {
  if (!starts(s, i, "{%")) return 0;
  size_t j = i + 2;
  *lstrip = j < s.size() && s[j] == '-';
  if (*lstrip) ++j;
  while (size_t n = space_at(s, j)) j += n;
  if (starts(s, j, "end")) j += 3;
  if (!starts(s, j, "generation")) return 0;
  j += 10;
  while (size_t n = space_at(s, j)) j += n;
  *rstrip = j < s.size() && s[j] == '-';
  if (*rstrip) ++j;
  return starts(s, j, "%}") ? j + 2 - i : 0;
}

Mapped strip_generation(const Mapped& in) {
  Mapped out;
  const std::string& s = in.s;
  size_t kept = 0;  // out.s.size() after the last removed tag: its spaces are gone
  for (size_t i = 0; i < s.size();) {
    bool l = false, r = false;
    if (const size_t n = generation_tag(s, i, &l, &r)) {
      if (l) {
        while (out.s.size() > kept) {
          size_t start = out.s.size() - 1;
          while (start > kept && (static_cast<unsigned char>(out.s[start]) & 0xc0) == 0x80) --start;
          if (space_at(out.s, start) != out.s.size() - start) break;
          out.s.resize(start);
          out.at.resize(start);
        }
      }
      i += n;
      // The spaces after the tag belong to this match either way, so a
      // following tag's "-" cannot remove them.
      while (size_t m = space_at(s, i)) {
        for (size_t k = 0; k < m && !r; ++k) out.push(s[i + k], in.at[i + k]);
        i += m;
      }
      kept = out.s.size();
      continue;
    }
    out.push(s[i], in.at[i]);
    ++i;
  }
  return out;
}

Mapped preprocess(const std::string& source) {
  Mapped m;
  m.s = source;
  m.at.resize(source.size());
  for (size_t i = 0; i < source.size(); ++i) m.at[i] = static_cast<uint32_t>(i);
  if (!m.s.empty() && m.s.back() == '\n') {
    m.s.pop_back();
    m.at.pop_back();
  }
  if (m.s.find("generation") != std::string::npos)
    return strip_generation(trim_blocks(lstrip_blocks(m)));
  return trim_blocks(lstrip_blocks(m));
}

struct Lexer {
  Mapped src;
  const SourceRef& where;
  std::vector<Token> tokens;
  size_t pos = 0;
  int curly_depth = 0;

  uint32_t off(size_t i) const {
    return i < src.at.size() ? src.at[i] : (src.at.empty() ? 0 : src.at.back() + 1);
  }
  [[noreturn]] void fail(const std::string& what) { where.error(off(pos), what); }
  void push(Tok t, std::string v, size_t start) { tokens.push_back({t, std::move(v), off(start)}); }
  char at(size_t i) const { return i < src.s.size() ? src.s[i] : '\0'; }
  bool last_is(std::initializer_list<Tok> types) const {
    if (tokens.empty()) return false;
    for (Tok t : types)
      if (tokens.back().type == t) return true;
    return false;
  }
  void strip_trailing_whitespace() {
    if (!last_is({Tok::text})) return;
    tokens.back().value = js_trim(tokens.back().value, false, true);
    if (tokens.back().value.empty()) tokens.pop_back();
  }
  void skip_whitespace() {
    while (size_t n = space_at(src.s, pos)) pos += n;
  }
  bool text();
  bool comment();
  bool sign_literal();
  bool symbol();
  void string_literal();
  void number();
  void word();
  void run();
};

bool Lexer::text() {
  const size_t start = pos;
  while (pos < src.s.size() &&
         !(src.s[pos] == '{' && (at(pos + 1) == '%' || at(pos + 1) == '{' || at(pos + 1) == '#')))
    ++pos;
  if (pos == start) return false;
  push(Tok::text, src.s.substr(start, pos - start), start);
  return true;
}

bool Lexer::comment() {
  const size_t start = pos;
  pos += 2;
  const bool strip_before = at(pos) == '-';
  if (strip_before) ++pos;
  std::string body;
  while (at(pos) != '#' || at(pos + 1) != '}') {
    if (pos + 2 >= src.s.size()) fail("unclosed comment (expected \"#}\")");
    body += src.s[pos++];
  }
  const bool strip_after = !body.empty() && body.back() == '-';
  if (strip_after) body.pop_back();
  if (strip_before) strip_trailing_whitespace();
  push(Tok::comment, body, start);
  pos += 2;
  if (strip_after) skip_whitespace();
  return true;
}

// "-"/"+" right after an operator or opening token starts a signed number
// literal ("[-1]"), or is a unary operator; after a value it is binary.
bool Lexer::sign_literal() {
  const char c = at(pos);
  if (c != '-' && c != '+') return false;
  if (tokens.empty() || last_is({Tok::text})) fail(std::string("unexpected character '") + c + "'");
  if (last_is({Tok::identifier, Tok::number, Tok::string, Tok::close_paren, Tok::close_square}))
    return false;
  const size_t start = pos++;
  std::string num;
  while (at(pos) >= '0' && at(pos) <= '9') num += src.s[pos++];
  if (!num.empty() && at(pos) == '.' && at(pos + 1) >= '0' && at(pos + 1) <= '9') {
    num += src.s[pos++];
    while (at(pos) >= '0' && at(pos) <= '9') num += src.s[pos++];
  }
  if (!num.empty() && pos >= src.s.size()) fail("unexpected end of template");
  push(num.empty() ? Tok::unary : Tok::number, std::string(1, c) + num, start);
  return true;
}

struct Symbol {
  const char* text;
  Tok type;
};
constexpr Symbol kSymbols[] = {{"{%", Tok::open_statement},
                               {"%}", Tok::close_statement},
                               {"{{", Tok::open_expression},
                               {"}}", Tok::close_expression},
                               {"(", Tok::open_paren},
                               {")", Tok::close_paren},
                               {"{", Tok::open_curly},
                               {"}", Tok::close_curly},
                               {"[", Tok::open_square},
                               {"]", Tok::close_square},
                               {",", Tok::comma},
                               {".", Tok::dot},
                               {":", Tok::colon},
                               {"|", Tok::pipe},
                               {"<=", Tok::comparison},
                               {">=", Tok::comparison},
                               {"==", Tok::comparison},
                               {"!=", Tok::comparison},
                               {"<", Tok::comparison},
                               {">", Tok::comparison},
                               {"+", Tok::additive},
                               {"-", Tok::additive},
                               {"~", Tok::additive},
                               {"**", Tok::power},
                               {"*", Tok::multiplicative},
                               {"//", Tok::multiplicative},
                               {"/", Tok::multiplicative},
                               {"%", Tok::multiplicative},
                               {"=", Tok::equals}};

bool Lexer::symbol() {
  for (const Symbol& sym : kSymbols) {
    if (sym.type == Tok::close_expression && curly_depth > 0) continue;
    if (!starts(src.s, pos, sym.text)) continue;
    push(sym.type, sym.text, pos);
    if (sym.type == Tok::open_expression) curly_depth = 0;
    if (sym.type == Tok::open_curly) ++curly_depth;
    if (sym.type == Tok::close_curly) --curly_depth;
    pos += std::strlen(sym.text);
    return true;
  }
  return false;
}

int hex_value(const std::string& h) {
  int v = 0;
  for (char c : h) {
    const int d = (c >= '0' && c <= '9')   ? c - '0'
                  : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                           : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

void Lexer::string_literal() {
  const size_t start = pos;
  const char quote = src.s[pos++];
  std::string out;
  char32_t high = 0;  // a \uD8xx waiting for its low surrogate
  const auto flush_high = [&] {
    if (high) append_utf8(out, 0xfffd);  // a lone surrogate prints as U+FFFD
    high = 0;
  };
  while (at(pos) != quote) {
    if (pos >= src.s.size()) fail("unterminated string literal");
    if (src.s[pos] != '\\') {
      flush_high();
      out += src.s[pos++];
      continue;
    }
    const char e = at(++pos);
    ++pos;
    if (e == 'x' || e == 'u') {
      const size_t n = e == 'x' ? 2 : 4;
      const int v = hex_value(src.s.substr(pos, n));
      if (v < 0 || pos + n > src.s.size()) fail("invalid hexadecimal escape sequence");
      pos += n;
      if (v >= 0xdc00 && v <= 0xdfff && high) {
        append_utf8(out, 0x10000 + ((high - 0xd800) << 10) + (static_cast<char32_t>(v) - 0xdc00));
        high = 0;
        continue;
      }
      flush_high();
      if (v >= 0xd800 && v <= 0xdbff)
        high = static_cast<char32_t>(v);
      else
        append_utf8(out, (v >= 0xdc00 && v <= 0xdfff) ? 0xfffd : static_cast<char32_t>(v));
      continue;
    }
    static const char* kFrom = "ntrbfv'\"\\";
    static const char* kTo = "\n\t\r\b\f\v'\"\\";
    const char* hit = e ? std::strchr(kFrom, e) : nullptr;
    if (!hit) fail(std::string("unexpected escaped character '") + e + "'");
    flush_high();
    out += kTo[hit - kFrom];
  }
  flush_high();
  ++pos;
  push(Tok::string, out, start);
}

void Lexer::number() {
  const size_t start = pos;
  while (at(pos) >= '0' && at(pos) <= '9') ++pos;
  if (!last_is({Tok::dot}) && at(pos) == '.' && at(pos + 1) >= '0' && at(pos + 1) <= '9') {
    ++pos;
    while (at(pos) >= '0' && at(pos) <= '9') ++pos;
  }
  if (pos >= src.s.size()) fail("unexpected end of template");
  push(Tok::number, src.s.substr(start, pos - start), start);
}

bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

void Lexer::word() {
  const size_t start = pos;
  while (word_char(at(pos))) ++pos;
  if (pos >= src.s.size()) fail("unexpected end of template");
  push(Tok::identifier, src.s.substr(start, pos - start), start);
}

void Lexer::run() {
  while (pos < src.s.size()) {
    if ((tokens.empty() || last_is({Tok::close_statement, Tok::close_expression, Tok::comment})) &&
        text())
      continue;
    if (starts(src.s, pos, "{#") && comment()) continue;
    if (starts(src.s, pos, "{%-") || starts(src.s, pos, "{{-")) {
      strip_trailing_whitespace();
      const bool stmt = src.s[pos + 1] == '%';
      push(stmt ? Tok::open_statement : Tok::open_expression, stmt ? "{%" : "{{", pos);
      if (!stmt) curly_depth = 0;
      pos += 3;
      continue;
    }
    skip_whitespace();
    if (pos >= src.s.size()) fail("unexpected end of template");
    if (starts(src.s, pos, "-%}") || starts(src.s, pos, "-}}")) {
      const bool stmt = src.s[pos + 1] == '%';
      push(stmt ? Tok::close_statement : Tok::close_expression, stmt ? "%}" : "}}", pos);
      pos += 3;
      skip_whitespace();
      continue;
    }
    if (sign_literal() || symbol()) continue;
    const char c = src.s[pos];
    if (c == '\'' || c == '"') {
      string_literal();
    } else if (c >= '0' && c <= '9') {
      number();
    } else if (word_char(c)) {
      word();
    } else {
      size_t len = 1;
      decode_utf8(src.s, pos, &len);
      fail("unexpected character '" + src.s.substr(pos, len) + "'");
    }
  }
}

}  // namespace

std::vector<Token> lex(const std::string& source, const SourceRef& where) {
  Lexer lexer{preprocess(source), where, {}, 0, 0};
  lexer.run();
  return std::move(lexer.tokens);
}

}  // namespace kiln::chat
