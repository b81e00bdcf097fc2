#include "report/deflate.h"

#include <algorithm>
#include <array>

namespace kiln {
namespace {

// Length symbols 257..285 and distance symbols 0..29 (RFC 1951 3.2.5):
// base value and number of extra bits.
constexpr uint16_t kLengthBase[29] = {3,  4,  5,  6,   7,   8,   9,   10,  11, 13,
                                      15, 17, 19, 23,  27,  31,  35,  43,  51, 59,
                                      67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLengthExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                    33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                    6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
constexpr size_t kMaxMatch = 258, kMaxDistance = 32768;

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;  // reflected CRC-32 polynomial
    t[i] = c;
  }
  return t;
}

// Bits go out least significant first; Huffman codes are defined most
// significant bit first, so they are reversed before being written.
class BitWriter {
 public:
  explicit BitWriter(std::vector<uint8_t>& out) : out_(out) {}
  void put(uint32_t bits, int n) {
    acc_ |= uint64_t(bits) << count_;
    count_ += n;
    while (count_ >= 8) out_.push_back(uint8_t(acc_)), acc_ >>= 8, count_ -= 8;
  }
  void put_code(uint32_t code, int n) {
    uint32_t r = 0;
    for (int i = 0; i < n; ++i) r = (r << 1) | ((code >> i) & 1);
    put(r, n);
  }
  void flush() {
    if (count_ > 0) out_.push_back(uint8_t(acc_));
    acc_ = 0, count_ = 0;
  }

 private:
  std::vector<uint8_t>& out_;
  uint64_t acc_ = 0;
  int count_ = 0;
};

// The fixed literal/length code (RFC 1951 3.2.6).
void put_fixed_symbol(BitWriter& w, int s) {
  if (s < 144)
    w.put_code(0x30 + s, 8);
  else if (s < 256)
    w.put_code(0x190 + (s - 144), 9);
  else if (s < 280)
    w.put_code(s - 256, 7);
  else
    w.put_code(0xC0 + (s - 280), 8);
}

void put_match(BitWriter& w, size_t length, size_t distance) {
  int l = 28;
  while (kLengthBase[l] > length) --l;
  put_fixed_symbol(w, 257 + l);
  if (kLengthExtra[l]) w.put(uint32_t(length - kLengthBase[l]), kLengthExtra[l]);
  int d = 29;
  while (kDistBase[d] > distance) --d;
  w.put_code(uint32_t(d), 5);  // fixed distance codes are plain 5-bit numbers
  if (kDistExtra[d]) w.put(uint32_t(distance - kDistBase[d]), kDistExtra[d]);
}

class BitReader {
 public:
  BitReader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  // n <= 16 bits; sets failed() when the input runs out.
  uint32_t bits(int n) {
    while (count_ < n) {
      if (pos_ >= n_) {
        failed_ = true;
        return 0;
      }
      acc_ |= uint32_t(p_[pos_++]) << count_;
      count_ += 8;
    }
    const uint32_t v = acc_ & ((1u << n) - 1);
    acc_ >>= n, count_ -= n;
    return v;
  }
  void align() { acc_ = 0, count_ = 0; }
  bool failed() const { return failed_; }
  size_t pos() const { return pos_; }
  const uint8_t* data() const { return p_; }
  size_t size() const { return n_; }
  void skip(size_t k) { pos_ += k; }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  uint32_t acc_ = 0;
  int count_ = 0;
  bool failed_ = false;
};

// A canonical Huffman code as counts per length and symbols in code order.
struct Huffman {
  uint16_t count[16] = {};
  uint16_t symbol[320] = {};
};

// False when the lengths over-subscribe the code space (not a prefix code).
bool build_huffman(Huffman& h, const uint8_t* lengths, int n) {
  std::fill(std::begin(h.count), std::end(h.count), 0);
  for (int s = 0; s < n; ++s) ++h.count[lengths[s]];
  int left = 1;
  for (int len = 1; len < 16; ++len) {
    left = (left << 1) - h.count[len];
    if (left < 0) return false;
  }
  uint16_t offset[16] = {};
  for (int len = 1; len < 15; ++len) offset[len + 1] = uint16_t(offset[len] + h.count[len]);
  for (int s = 0; s < n; ++s)
    if (lengths[s]) h.symbol[offset[lengths[s]]++] = uint16_t(s);
  return true;
}

// Reads one symbol bit by bit: codes of each length are consecutive
// integers starting at `first`, so a code is found when it falls below first + count.
int decode_symbol(BitReader& r, const Huffman& h) {
  int code = 0, first = 0, index = 0;
  for (int len = 1; len < 16; ++len) {
    code |= int(r.bits(1));
    if (r.failed()) return -1;
    const int count = h.count[len];
    if (code - first < count) return h.symbol[index + (code - first)];
    index += count, first += count;
    first <<= 1, code <<= 1;
  }
  return -1;
}

bool inflate_codes(BitReader& r, const Huffman& lit, const Huffman& dist, std::vector<uint8_t>& out,
                   size_t max_out, std::string* error) {
  for (;;) {
    const int s = decode_symbol(r, lit);
    if (s < 0) return *error = "bad literal/length code", false;
    if (s < 256) {
      if (out.size() >= max_out) return *error = "output too large", false;
      out.push_back(uint8_t(s));
      continue;
    }
    if (s == 256) return true;
    if (s > 285) return *error = "bad length symbol", false;
    const size_t length = kLengthBase[s - 257] + r.bits(kLengthExtra[s - 257]);
    const int d = decode_symbol(r, dist);
    if (d < 0 || d > 29) return *error = "bad distance code", false;
    const size_t distance = kDistBase[d] + r.bits(kDistExtra[d]);
    if (r.failed()) return *error = "truncated stream", false;
    if (distance > out.size()) return *error = "distance before the start", false;
    if (out.size() + length > max_out) return *error = "output too large", false;
    for (size_t i = 0; i < length; ++i)
      out.push_back(out[out.size() - distance]);  // may overlap itself
  }
}

bool inflate_dynamic(BitReader& r, Huffman& lit, Huffman& dist, std::string* error) {
  const int nlen = int(r.bits(5)) + 257, ndist = int(r.bits(5)) + 1, ncode = int(r.bits(4)) + 4;
  if (nlen > 286 || ndist > 30) return *error = "bad code counts", false;
  static constexpr uint8_t kOrder[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                         11, 4,  12, 3, 13, 2, 14, 1, 15};
  uint8_t lengths[320] = {};
  for (int i = 0; i < ncode; ++i) lengths[kOrder[i]] = uint8_t(r.bits(3));
  Huffman code_lengths;
  if (r.failed() || !build_huffman(code_lengths, lengths, 19))
    return *error = "bad code length code", false;
  int i = 0;
  while (i < nlen + ndist) {
    const int s = decode_symbol(r, code_lengths);
    if (s < 0) return *error = "bad code length", false;
    if (s < 16) {
      lengths[i++] = uint8_t(s);
      continue;
    }
    uint8_t value = 0;
    int repeat;
    if (s == 16) {
      if (i == 0) return *error = "repeat with no previous length", false;
      value = lengths[i - 1], repeat = 3 + int(r.bits(2));
    } else if (s == 17) {
      repeat = 3 + int(r.bits(3));
    } else {
      repeat = 11 + int(r.bits(7));
    }
    if (i + repeat > nlen + ndist) return *error = "code lengths overrun", false;
    while (repeat--) lengths[i++] = value;
  }
  if (lengths[256] == 0) return *error = "no end-of-block code", false;
  if (!build_huffman(lit, lengths, nlen) || !build_huffman(dist, lengths + nlen, ndist))
    return *error = "over-subscribed code", false;
  return !r.failed() || (*error = "truncated stream", false);
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t adler32(const uint8_t* data, size_t n, uint32_t adler) {
  uint32_t a = adler & 0xFFFF, b = adler >> 16;
  for (size_t i = 0; i < n; ++i) a = (a + data[i]) % 65521, b = (b + a) % 65521;
  return (b << 16) | a;
}

std::vector<uint8_t> zlib_compress(const std::vector<uint8_t>& data,
                                   const std::vector<size_t>& distances) {
  std::vector<uint8_t> out = {0x78, 0x01};  // deflate, 32 KiB window; (0x78 * 256 + 0x01) % 31 == 0
  BitWriter w(out);
  w.put(1, 1);  // BFINAL: the only block
  w.put(1, 2);  // BTYPE 01: fixed Huffman codes
  const size_t n = data.size();
  for (size_t i = 0; i < n;) {
    size_t best_len = 0, best_dist = 0;
    for (size_t d : distances) {
      if (d == 0 || d > i || d > kMaxDistance) continue;
      size_t len = 0;
      const size_t limit = std::min(kMaxMatch, n - i);
      while (len < limit && data[i + len] == data[i + len - d]) ++len;
      if (len > best_len) best_len = len, best_dist = d;
    }
    if (best_len >= 3) {
      put_match(w, best_len, best_dist);
      i += best_len;
    } else {
      put_fixed_symbol(w, data[i]);
      ++i;
    }
  }
  put_fixed_symbol(w, 256);  // end of block
  w.flush();
  const uint32_t a = adler32(data.data(), data.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(a >> shift));
  return out;
}

std::optional<std::vector<uint8_t>> zlib_decompress(const uint8_t* data, size_t n, size_t max_out,
                                                    std::string* error) {
  std::string local;
  if (!error) error = &local;
  if (n < 6) return *error = "zlib stream too short", std::nullopt;
  if ((data[0] & 0x0F) != 8 || (data[0] * 256 + data[1]) % 31 != 0 || (data[1] & 0x20))
    return *error = "not a zlib deflate stream", std::nullopt;
  BitReader r(data + 2, n - 2);
  std::vector<uint8_t> out;
  for (bool last = false; !last;) {
    last = r.bits(1) != 0;
    const uint32_t type = r.bits(2);
    if (r.failed()) return *error = "truncated stream", std::nullopt;
    if (type == 0) {  // stored: byte-aligned LEN, ~LEN, then raw bytes
      r.align();
      const size_t p = r.pos();
      if (p + 4 > r.size()) return *error = "truncated stored block", std::nullopt;
      const uint8_t* h = r.data() + p;
      const unsigned len = h[0] | (h[1] << 8), nlen = h[2] | (h[3] << 8);
      if ((len ^ 0xFFFF) != nlen) return *error = "stored block length check failed", std::nullopt;
      if (p + 4 + len > r.size()) return *error = "truncated stored block", std::nullopt;
      if (out.size() + len > max_out) return *error = "output too large", std::nullopt;
      out.insert(out.end(), h + 4, h + 4 + len);
      r.skip(4 + len);
    } else if (type == 1) {
      static const std::pair<Huffman, Huffman> fixed = [] {
        uint8_t lengths[320];
        std::fill(lengths, lengths + 144, 8);
        std::fill(lengths + 144, lengths + 256, 9);
        std::fill(lengths + 256, lengths + 280, 7);
        std::fill(lengths + 280, lengths + 288, 8);
        std::pair<Huffman, Huffman> codes;
        build_huffman(codes.first, lengths, 288);
        std::fill(lengths, lengths + 30, 5);
        build_huffman(codes.second, lengths, 30);
        return codes;
      }();
      if (!inflate_codes(r, fixed.first, fixed.second, out, max_out, error)) return std::nullopt;
    } else if (type == 2) {
      Huffman lit, dist;
      if (!inflate_dynamic(r, lit, dist, error) ||
          !inflate_codes(r, lit, dist, out, max_out, error))
        return std::nullopt;
    } else {
      return *error = "reserved block type", std::nullopt;
    }
  }
  r.align();
  const size_t p = r.pos();
  if (p + 4 > r.size()) return *error = "missing Adler-32", std::nullopt;
  const uint8_t* a = r.data() + p;
  const uint32_t expected =
      uint32_t(a[0]) << 24 | uint32_t(a[1]) << 16 | uint32_t(a[2]) << 8 | a[3];
  if (expected != adler32(out.data(), out.size()))
    return *error = "Adler-32 mismatch", std::nullopt;
  return out;
}

}  // namespace kiln
