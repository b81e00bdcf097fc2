// Just enough DEFLATE (RFC 1951) and zlib framing (RFC 1950) for PNG files:
// a compressor that emits one fixed-Huffman block whose matches look back
// one pixel or one image row (which is where a chart's repetition is), and a
// complete decompressor (stored, fixed and dynamic blocks) so tests can read
// the PNGs Kiln writes and the screenshots Chromium writes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln {

uint32_t adler32(const uint8_t* data, size_t n, uint32_t adler = 1);
uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0);

// zlib stream of `data`. Matches are searched only at the given distances
// (e.g. {bytes per pixel, bytes per row}); an empty list gives literals only.
std::vector<uint8_t> zlib_compress(const std::vector<uint8_t>& data,
                                   const std::vector<size_t>& distances);

// Inflates a zlib stream and checks its Adler-32; nullopt (with *error set)
// on any malformed input or when the output would pass max_out bytes.
std::optional<std::vector<uint8_t>> zlib_decompress(const uint8_t* data, size_t n, size_t max_out,
                                                    std::string* error);

}  // namespace kiln
