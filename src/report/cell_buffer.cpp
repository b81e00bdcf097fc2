#include "report/cell_buffer.h"

#include <algorithm>

namespace kiln {

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

int glyph_width(char32_t c) {
  // The wide ranges of Unicode's East Asian Width table that matter in
  // practice (Hangul, CJK, fullwidth forms, emoji); combining marks are rare
  // in samples and counted as 1, which at worst shifts that one line.
  if ((c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0x303E) ||
      (c >= 0x3041 && c <= 0xA4CF) || (c >= 0xAC00 && c <= 0xD7A3) ||
      (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFE30 && c <= 0xFE4F) ||
      (c >= 0xFF00 && c <= 0xFF60) || (c >= 0xFFE0 && c <= 0xFFE6) ||
      (c >= 0x1F300 && c <= 0x1F64F) || (c >= 0x1F900 && c <= 0x1F9FF) ||
      (c >= 0x20000 && c <= 0x3FFFD))
    return 2;
  return 1;
}

int text_columns(std::string_view utf8) {
  int cols = 0;
  for (size_t pos = 0; pos < utf8.size();) cols += glyph_width(next_code_point(utf8, &pos));
  return cols;
}

char32_t next_code_point(std::string_view s, size_t* pos) {
  const unsigned char b0 = static_cast<unsigned char>(s[*pos]);
  ++*pos;
  if (b0 < 0x80) return b0;
  int extra = b0 >= 0xF0 && b0 < 0xF5 ? 3 : b0 >= 0xE0 ? 2 : b0 >= 0xC2 && b0 < 0xE0 ? 1 : -1;
  if (extra < 0 || b0 >= 0xF5) return 0xFFFD;
  char32_t c = b0 & (0x3F >> extra);
  for (int i = 0; i < extra; ++i) {
    if (*pos >= s.size() || (static_cast<unsigned char>(s[*pos]) & 0xC0) != 0x80) return 0xFFFD;
    c = (c << 6) | (static_cast<unsigned char>(s[*pos]) & 0x3F);
    ++*pos;
  }
  // Overlong forms, surrogates and values past U+10FFFF are not characters.
  if ((extra == 2 && c < 0x800) || (extra == 3 && (c < 0x10000 || c > 0x10FFFF)) ||
      (c >= 0xD800 && c <= 0xDFFF))
    return 0xFFFD;
  return c;
}

void CellBuffer::resize(int width, int height) {
  width_ = std::max(width, 0);
  height_ = std::max(height, 0);
  cells_.assign(size_t(width_) * height_, Cell{});
}

void CellBuffer::clear() { std::fill(cells_.begin(), cells_.end(), Cell{}); }

void CellBuffer::set(int x, int y, char32_t ch, uint8_t fg, uint8_t attr) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  cells_[size_t(y) * width_ + x] = Cell{ch, fg, attr};
}

int CellBuffer::text(int x, int y, std::string_view utf8, uint8_t fg, uint8_t attr, int max_cols) {
  if (y < 0 || y >= height_) return 0;
  const int end = max_cols < 0 ? width_ : std::min(width_, x + max_cols);
  int col = x;
  for (size_t pos = 0; pos < utf8.size() && col < end;) {
    char32_t c = next_code_point(utf8, &pos);
    if (c < 0x20 || (c >= 0x7F && c < 0xA0)) c = U' ';  // never send control codes to the terminal
    const int w = glyph_width(c);
    if (col + w > end) break;  // a wide glyph that does not fit is left out, not cut
    if (col >= 0) set(col, y, c, fg, attr);
    if (w == 2 && col + 1 >= 0) set(col + 1, y, 0, fg, attr);
    col += w;
  }
  return std::max(0, col - std::max(x, 0));
}

void CellBuffer::fill(int x, int y, int w, int h, char32_t ch, uint8_t fg, uint8_t attr) {
  for (int r = y; r < y + h; ++r)
    for (int c = x; c < x + w; ++c) set(c, r, ch, fg, attr);
}

void CellBuffer::box(int x, int y, int w, int h, std::string_view title, uint8_t color,
                     bool unicode) {
  if (w < 2 || h < 2) return;
  const char32_t horizontal = unicode ? U'─' : U'-', vertical = unicode ? U'│' : U'|';
  const char32_t tl = unicode ? U'╭' : U'+', tr = unicode ? U'╮' : U'+';
  const char32_t bl = unicode ? U'╰' : U'+', br = unicode ? U'╯' : U'+';
  for (int c = x + 1; c < x + w - 1; ++c)
    set(c, y, horizontal, color), set(c, y + h - 1, horizontal, color);
  for (int r = y + 1; r < y + h - 1; ++r)
    set(x, r, vertical, color), set(x + w - 1, r, vertical, color);
  set(x, y, tl, color), set(x + w - 1, y, tr, color);
  set(x, y + h - 1, bl, color), set(x + w - 1, y + h - 1, br, color);
  if (!title.empty() && w > 6) {
    set(x + 1, y, U' ', color);
    const int n = text(x + 2, y, title, color, kBold, w - 5);
    set(x + 2 + n, y, U' ', color);
  }
}

std::string CellBuffer::row_text(int y) const {
  std::string out;
  for (int x = 0; x < width_; ++x) {
    const char32_t c = at(x, y).ch;
    if (c != 0) append_utf8(out, c);
  }
  return out;
}

std::string CellBuffer::to_text() const {
  std::string out;
  for (int y = 0; y < height_; ++y) {
    out += row_text(y);
    out += '\n';
  }
  return out;
}

std::vector<std::string> wrap_text(std::string_view utf8, int cols) {
  std::vector<std::string> lines;
  if (cols <= 0) return lines;
  std::string line, word;
  int line_w = 0, word_w = 0;
  auto flush_word = [&] {
    if (word.empty()) return;
    if (line_w > 0 && line_w + 1 + word_w > cols) {
      lines.push_back(line);
      line.clear(), line_w = 0;
    }
    if (line_w > 0) line += ' ', ++line_w;
    line += word, line_w += word_w;
    word.clear(), word_w = 0;
  };
  for (size_t pos = 0; pos < utf8.size();) {
    char32_t c = next_code_point(utf8, &pos);
    if (c == U'\n') {
      flush_word();
      lines.push_back(line);
      line.clear(), line_w = 0;
      continue;
    }
    if (c == U' ' || c == U'\t' || c == U'\r') {
      flush_word();
      continue;
    }
    if (c < 0x20 || (c >= 0x7F && c < 0xA0)) c = U' ';
    const int w = glyph_width(c);
    if (word_w + w > cols) {  // a word longer than the line is cut where it must be
      flush_word();
    }
    append_utf8(word, c);
    word_w += w;
  }
  flush_word();
  if (!line.empty()) lines.push_back(line);
  return lines;
}

}  // namespace kiln
