#include "report/png.h"

#include <png.h>

#include <cstdlib>
#include <memory>

#include "core/error.h"

namespace kiln {

std::string encode_png(const RgbImage& image) {
  static_assert(sizeof(Rgb) == 3, "pixels are passed to libpng as packed RGB bytes");
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = png_uint_32(image.width);
  png.height = png_uint_32(image.height);
  png.format = PNG_FORMAT_RGB;
  // libpng's simplified API writes in two calls: the first sizes the file.
  png_alloc_size_t size = 0;
  const void* pixels = image.pixels.data();
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, pixels, 0, nullptr))
    fail_runtime("png", std::string("libpng cannot write the image: ") + png.message);
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, pixels, 0, nullptr))
    fail_runtime("png", std::string("libpng cannot write the image: ") + png.message);
  out.resize(size);
  return out;
}

}  // namespace kiln
