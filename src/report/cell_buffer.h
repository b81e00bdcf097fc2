// An off-screen grid of terminal character cells: the dashboard lays itself
// out here (tests read it back as text), and the terminal driver sends only
// the cells that changed since the last frame. Every write is clipped to the
// grid, so no layout can spill past the edge of the screen.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

enum Color : uint8_t {
  kDefault = 0,
  kRed = 1,
  kGreen,
  kYellow,
  kBlue,
  kMagenta,
  kCyan,
  kWhite,     // ANSI 31..37
  kGrey = 8,  // bright black
  kBrightRed,
  kBrightGreen,
  kBrightYellow,
  kBrightBlue,
  kBrightMagenta,
  kBrightCyan,
  kBrightWhite
};
enum Attr : uint8_t { kNormal = 0, kBold = 1, kInverse = 2 };

struct Cell {
  char32_t ch = U' ';  // 0: the right half of the wide glyph to its left
  uint8_t fg = kDefault;
  uint8_t attr = kNormal;
  bool operator==(const Cell&) const = default;
};

// Appends the UTF-8 encoding of one code point.
void append_utf8(std::string& out, char32_t c);
// Columns a code point takes in a terminal: 2 for East Asian wide and emoji, else 1.
int glyph_width(char32_t c);
// Columns a UTF-8 string takes.
int text_columns(std::string_view utf8);

class CellBuffer {
 public:
  CellBuffer(int width = 0, int height = 0) { resize(width, height); }
  void resize(int width, int height);
  void clear();
  int width() const { return width_; }
  int height() const { return height_; }
  const Cell& at(int x, int y) const { return cells_[size_t(y) * width_ + x]; }
  void set(int x, int y, char32_t ch, uint8_t fg = kDefault, uint8_t attr = kNormal);

  // Writes UTF-8 text from column x, stopping before column x + max_cols (or
  // the right edge). Control characters become spaces and invalid bytes U+FFFD.
  // Returns the columns written.
  int text(int x, int y, std::string_view utf8, uint8_t fg = kDefault, uint8_t attr = kNormal,
           int max_cols = -1);
  // Fills a rectangle with one character.
  void fill(int x, int y, int w, int h, char32_t ch, uint8_t fg = kDefault, uint8_t attr = kNormal);
  // A frame with a title in its top edge; `unicode` picks line-drawing glyphs over + - |.
  void box(int x, int y, int w, int h, std::string_view title, uint8_t color, bool unicode);

  // Row y as UTF-8 without colours (wide glyphs once); the whole grid with '\n' between rows.
  std::string row_text(int y) const;
  std::string to_text() const;

 private:
  int width_ = 0, height_ = 0;
  std::vector<Cell> cells_;
};

// Splits text into lines of at most `cols` columns, breaking at spaces where
// it can and at '\n' always. Used for the sample panel and long values.
std::vector<std::string> wrap_text(std::string_view utf8, int cols);

// Decodes one code point from s at *pos (advancing it); U+FFFD for bad bytes.
char32_t next_code_point(std::string_view s, size_t* pos);

}  // namespace kiln
