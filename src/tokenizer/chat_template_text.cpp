// UTF-8 helpers that give the chat-template interpreter JavaScript's string
// semantics (whitespace set, trim, UTF-16 length, parseInt/parseFloat).
#include <cmath>
#include <cstdlib>

#include "tokenizer/chat_template_value.h"

namespace kiln::chat {

char32_t decode_utf8(std::string_view s, size_t i, size_t* len) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  *len = 1;
  if (c < 0x80) return c;
  int n = 0;
  char32_t cp = 0;
  if ((c & 0xe0) == 0xc0) {
    n = 1;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    n = 2;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    n = 3;
    cp = c & 0x07;
  } else {
    return 0xfffd;
  }
  if (i + static_cast<size_t>(n) >= s.size()) return 0xfffd;
  for (int k = 1; k <= n; ++k) {
    if ((b(i + static_cast<size_t>(k)) & 0xc0) != 0x80) return 0xfffd;
    cp = (cp << 6) | (b(i + static_cast<size_t>(k)) & 0x3f);
  }
  static const char32_t min_for[] = {0, 0x80, 0x800, 0x10000};
  if (cp < min_for[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0xfffd;
  *len = static_cast<size_t>(n) + 1;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

std::vector<std::string> code_points(std::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    decode_utf8(s, i, &len);
    out.emplace_back(s.substr(i, len));
    i += len;
  }
  return out;
}

bool js_space(char32_t c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0d) || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000 || c == 0xfeff;
}

size_t space_at(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  size_t len = 1;
  const char32_t cp = decode_utf8(s, i, &len);
  return js_space(cp) ? len : 0;
}

std::string js_trim(std::string_view s, bool left, bool right) {
  size_t begin = 0, end = s.size();
  if (left)
    while (size_t n = space_at(s, begin)) begin += n;
  if (right) {
    // Walk back to the start of the last code point, then test it.
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(s[start]) & 0xc0) == 0x80) --start;
      size_t len = 1;
      const char32_t cp = decode_utf8(s, start, &len);
      if (start + len != end || !js_space(cp)) break;
      end = start;
    }
  }
  return std::string(s.substr(begin, end - begin));
}

size_t js_length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    const char32_t cp = decode_utf8(s, i, &len);
    n += cp >= 0x10000 ? 2 : 1;
    i += len;
  }
  return n;
}

static size_t skip_space(std::string_view s) {
  size_t i = 0;
  while (size_t n = space_at(s, i)) i += n;
  return i;
}

double js_parse_int(std::string_view s) {
  size_t i = skip_space(s);
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  const size_t start = i;
  double v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
  if (i == start) return NAN;
  return negative ? -v : v;
}

double js_parse_float(std::string_view s) {
  const size_t first = skip_space(s);
  size_t i = first;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (s.substr(i, 8) == "Infinity") return (s[first] == '-') ? -INFINITY : INFINITY;
  const auto digits = [&] {
    const size_t from = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - from;
  };
  size_t n = digits();
  if (i < s.size() && s[i] == '.') {
    ++i;
    n += digits();
  }
  if (n == 0) return NAN;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t j = i + 1;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
    if (j < s.size() && s[j] >= '0' && s[j] <= '9') {
      i = j;
      digits();
    }
  }
  return std::strtod(std::string(s.substr(first, i - first)).c_str(), nullptr);
}

// Simple case mapping for the scripts chat text mostly uses: ASCII, Latin-1,
// Latin Extended-A, Greek, Cyrillic. Others are left as they are (JavaScript
// maps all of Unicode; the difference shows only past these blocks).
static char32_t to_upper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c == 0xb5) return 0x39c;
  if (c == 0xff) return 0x178;
  if (c >= 0xe0 && c <= 0xfe && c != 0xf7) return c - 32;
  if (c == 0x131) return 'I';
  if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177)) return c & ~1u;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return (c & 1u) ? c : c - 1;
  if (c == 0x3c2) return 0x3a3;
  if (c >= 0x3b1 && c <= 0x3c9) return c - 32;
  if (c == 0x3ac) return 0x386;
  if (c >= 0x3ad && c <= 0x3af) return c - 37;
  if (c == 0x3cc) return 0x38c;
  if (c == 0x3cd || c == 0x3ce) return c - 63;
  if (c >= 0x430 && c <= 0x44f) return c - 32;
  if (c >= 0x450 && c <= 0x45f) return c - 80;
  if (c >= 0x460 && c <= 0x481) return c & ~1u;
  return c;
}

static char32_t to_lower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c >= 0xc0 && c <= 0xde && c != 0xd7) return c + 32;
  if (c == 0x178) return 0xff;
  if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177)) return c | 1u;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return (c & 1u) ? c + 1 : c;
  if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
  if (c == 0x386) return 0x3ac;
  if (c >= 0x388 && c <= 0x38a) return c + 37;
  if (c == 0x38c) return 0x3cc;
  if (c == 0x38e || c == 0x38f) return c + 63;
  if (c >= 0x410 && c <= 0x42f) return c + 32;
  if (c >= 0x400 && c <= 0x40f) return c + 80;
  if (c >= 0x460 && c <= 0x481) return c | 1u;
  return c;
}

std::string js_case(std::string_view s, bool upper) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    const char32_t cp = decode_utf8(s, i, &len);
    if (cp == 0xfffd && len == 1 && static_cast<unsigned char>(s[i]) >= 0x80) {
      out += s[i];  // keep a malformed byte as it is
    } else if (upper && cp == 0xdf) {
      out += "SS";
    } else if (!upper && cp == 0x130) {
      out += "i\u0307";
    } else {
      append_utf8(out, upper ? to_upper(cp) : to_lower(cp));
    }
    i += len;
  }
  return out;
}

}  // namespace kiln::chat
