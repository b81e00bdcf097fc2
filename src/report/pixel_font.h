// A 5x7 pixel font for the labels of PNG charts (no font files, no
// dependencies). Bytes outside the font (including UTF-8) draw as a box.
#pragma once
#include <string>

#include "report/png.h"

namespace kiln {

constexpr int kFontWidth = 5, kFontHeight = 7;

// Whether pixel (x, y) of character c is ink (x < 5, y < 7, y = 0 at the top).
bool font_pixel(char c, int x, int y);

// Draws text with its top-left corner at (x, y), each font pixel scale x scale.
void draw_text(RgbImage& image, int x, int y, const std::string& text, Rgb color, int scale = 1);
int text_width(const std::string& text, int scale = 1);

}  // namespace kiln
