// Test helper: reads a PNG (Kiln's charts, Chromium's screenshots) into an
// RgbImage through libpng, alpha composited over white.
#pragma once
#include <png.h>

#include <optional>
#include <string>

#include "report/png.h"

namespace kiln::test {

inline std::optional<RgbImage> read_png(const std::string& bytes, std::string* error) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size())) {
    *error = png.message;
    return std::nullopt;
  }
  png.format = PNG_FORMAT_RGB;
  RgbImage image(int(png.width), int(png.height), Rgb{});
  const png_color white = {255, 255, 255};
  if (!png_image_finish_read(&png, &white, image.pixels.data(), 0, nullptr)) {
    *error = png.message;
    png_image_free(&png);
    return std::nullopt;
  }
  return image;
}

}  // namespace kiln::test
