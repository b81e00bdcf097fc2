#include "report/png.h"

#include <cstdlib>
#include <cstring>

#include "report/deflate.h"

namespace kiln {
namespace {

constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += char(uint8_t(v >> shift));
}

uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// A chunk is length, type, data, and the CRC-32 of type + data.
void put_chunk(std::string& out, const char type[4], const std::vector<uint8_t>& data) {
  put_u32(out, uint32_t(data.size()));
  std::vector<uint8_t> typed(type, type + 4);
  typed.insert(typed.end(), data.begin(), data.end());
  out.append(reinterpret_cast<const char*>(typed.data()), typed.size());
  put_u32(out, crc32(typed.data(), typed.size()));
}

// The Paeth predictor of PNG filter type 4: whichever of left, up and
// upper-left is closest to left + up - upper-left.
uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return uint8_t(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

}  // namespace

std::string encode_png(const RgbImage& image) {
  std::string out(reinterpret_cast<const char*>(kSignature), 8);
  std::vector<uint8_t> ihdr;
  for (uint32_t v : {uint32_t(image.width), uint32_t(image.height)})
    for (int shift = 24; shift >= 0; shift -= 8) ihdr.push_back(uint8_t(v >> shift));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8 bits, RGB, deflate, filter method 0, no interlace
  put_chunk(out, "IHDR", ihdr);
  const size_t stride = size_t(image.width) * 3 + 1;  // filter byte + pixels
  std::vector<uint8_t> raw;
  raw.reserve(stride * size_t(image.height));
  for (int y = 0; y < image.height; ++y) {
    raw.push_back(0);  // filter type 0: bytes as they are
    for (int x = 0; x < image.width; ++x) {
      const Rgb& c = image.pixels[size_t(y) * image.width + x];
      raw.insert(raw.end(), {c.r, c.g, c.b});
    }
  }
  // Charts repeat the pixel to the left and the row above: match those.
  put_chunk(out, "IDAT", zlib_compress(raw, {3, stride}));
  put_chunk(out, "IEND", {});
  return out;
}

std::optional<RgbImage> decode_png(const std::string& bytes, std::string* error) {
  std::string local;
  if (!error) error = &local;
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  if (n < 8 || std::memcmp(p, kSignature, 8) != 0) return *error = "not a PNG file", std::nullopt;
  uint32_t width = 0, height = 0;
  int bit_depth = 0, color_type = -1, interlace = 0;
  std::vector<uint8_t> idat, palette;
  bool ended = false;
  for (size_t pos = 8; pos + 12 <= n && !ended;) {
    const uint32_t len = get_u32(p + pos);
    if (len > n - pos - 12) return *error = "truncated chunk", std::nullopt;
    const std::string type(reinterpret_cast<const char*>(p + pos + 4), 4);
    const uint8_t* data = p + pos + 8;
    if (crc32(p + pos + 4, len + 4) != get_u32(data + len))
      return *error = "CRC mismatch in " + type, std::nullopt;
    if (type == "IHDR" && len >= 13) {
      width = get_u32(data), height = get_u32(data + 4);
      bit_depth = data[8], color_type = data[9], interlace = data[12];
    } else if (type == "PLTE") {
      palette.assign(data, data + len);
    } else if (type == "IDAT") {
      idat.insert(idat.end(), data, data + len);
    } else if (type == "IEND") {
      ended = true;
    }
    pos += 12 + len;
  }
  if (!ended) return *error = "no IEND chunk", std::nullopt;
  if (width == 0 || height == 0 || width > 20000 || height > 20000)
    return *error = "bad image size", std::nullopt;
  if (bit_depth != 8 || interlace != 0)
    return *error = "only 8-bit non-interlaced PNGs are read", std::nullopt;
  int channels = 0;
  switch (color_type) {
    case 0:
      channels = 1;
      break;
    case 2:
      channels = 3;
      break;
    case 3:
      channels = 1;
      break;
    case 4:
      channels = 2;
      break;
    case 6:
      channels = 4;
      break;
    default:
      return *error = "unknown colour type", std::nullopt;
  }
  const size_t row_bytes = size_t(width) * channels, stride = row_bytes + 1;
  auto raw = zlib_decompress(idat.data(), idat.size(), stride * height, error);
  if (!raw) return std::nullopt;
  if (raw->size() != stride * height) return *error = "image data has the wrong size", std::nullopt;
  // Undo the per-row filters in place (PNG spec section 9): each byte is
  // predicted from the byte one pixel left (a), above (b) and above-left (c).
  std::vector<uint8_t> prev(row_bytes, 0);
  RgbImage image(int(width), int(height), Rgb{});
  for (uint32_t y = 0; y < height; ++y) {
    uint8_t* row = raw->data() + y * stride + 1;
    const int filter = row[-1];
    for (size_t i = 0; i < row_bytes; ++i) {
      const int a = i >= size_t(channels) ? row[i - channels] : 0, b = prev[i];
      const int c = i >= size_t(channels) ? prev[i - channels] : 0;
      switch (filter) {
        case 0:
          break;
        case 1:
          row[i] = uint8_t(row[i] + a);
          break;
        case 2:
          row[i] = uint8_t(row[i] + b);
          break;
        case 3:
          row[i] = uint8_t(row[i] + ((a + b) >> 1));
          break;
        case 4:
          row[i] = uint8_t(row[i] + paeth(a, b, c));
          break;
        default:
          return *error = "bad filter type", std::nullopt;
      }
    }
    std::memcpy(prev.data(), row, row_bytes);
    for (uint32_t x = 0; x < width; ++x) {
      const uint8_t* px = row + size_t(x) * channels;
      Rgb c;
      int alpha = 255;
      if (color_type == 0 || color_type == 4) c = {px[0], px[0], px[0]};
      if (color_type == 4) alpha = px[1];
      if (color_type == 2 || color_type == 6) c = {px[0], px[1], px[2]};
      if (color_type == 6) alpha = px[3];
      if (color_type == 3) {
        if (size_t(px[0]) * 3 + 2 >= palette.size())
          return *error = "palette index out of range", std::nullopt;
        c = {palette[px[0] * 3], palette[px[0] * 3 + 1], palette[px[0] * 3 + 2]};
      }
      if (alpha != 255) {  // composite over white, as a page background would
        auto over = [alpha](int v) { return uint8_t((v * alpha + 255 * (255 - alpha)) / 255); };
        c = {over(c.r), over(c.g), over(c.b)};
      }
      image.pixels[size_t(y) * width + x] = c;
    }
  }
  return image;
}

}  // namespace kiln
