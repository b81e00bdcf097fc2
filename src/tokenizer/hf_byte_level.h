// GPT-2's byte-level alphabet: every byte value is shown as one printable
// Unicode character (printable Latin-1 bytes as themselves, the rest shifted to
// U+0100 and up), so a byte-level BPE vocabulary is plain text in tokenizer.json.
#pragma once
#include <array>
#include <string>
#include <string_view>

namespace kiln::hf {

class ByteLevelAlphabet {
 public:
  static const ByteLevelAlphabet& get();

  // The UTF-8 of the character that stands for `byte`.
  std::string_view encode_byte(unsigned char byte) const { return chars_[byte]; }
  // Appends the byte-level form of raw `bytes` to `out`.
  void encode(std::string_view bytes, std::string& out) const;
  // The byte of the code point `cp`, or -1 if it is not in the alphabet.
  int decode_char(uint32_t cp) const { return cp < reverse_.size() ? reverse_[cp] : -1; }
  // Raw bytes of a byte-level token; false (and `out` unchanged) if it holds a
  // character outside the alphabet (an added token like "<|im_start|>" is all
  // ASCII and maps to itself; "Ġ" is a space).
  bool decode(std::string_view token, std::string& out) const;

 private:
  ByteLevelAlphabet();
  std::array<std::string, 256> chars_;
  std::array<int16_t, 324> reverse_;  // every alphabet code point is < 324
};

// Decodes the code point at text[pos] (valid UTF-8 assumed) and advances pos.
uint32_t next_code_point(std::string_view text, size_t& pos);
// Appends the UTF-8 of `cp`.
void append_utf8(uint32_t cp, std::string& out);
// Valid UTF-8 as it is; each malformed byte becomes U+FFFD (encode's input).
std::string sanitize_utf8(std::string_view text);
// Valid UTF-8 as it is; each maximal malformed subsequence becomes one U+FFFD,
// as Rust's from_utf8_lossy and the WHATWG TextDecoder do (decode's output).
std::string lossy_utf8(std::string_view bytes);

}  // namespace kiln::hf
