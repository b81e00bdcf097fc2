// PNG files for `kiln report --png`: an 8-bit RGB raster, written by libpng.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

// Row-major, top row first. Drawing outside the image is dropped.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<Rgb> pixels;
  RgbImage() = default;
  RgbImage(int w, int h, Rgb fill) : width(w), height(h), pixels(size_t(w) * h, fill) {}
  void set(int x, int y, Rgb c) {
    if (x >= 0 && y >= 0 && x < width && y < height) pixels[size_t(y) * width + x] = c;
  }
  Rgb at(int x, int y) const { return pixels[size_t(y) * width + x]; }
};

// The PNG file bytes (8-bit RGB). RuntimeError if libpng refuses.
std::string encode_png(const RgbImage& image);

}  // namespace kiln
