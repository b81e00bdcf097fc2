// GPT-2's byte <-> character table and small UTF-8 helpers.
#include "tokenizer/hf_byte_level.h"

#include "tokenizer/tokenizer.h"

namespace kiln::hf {

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t next_code_point(std::string_view text, size_t& pos) {
  const auto b = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(text[i]));
  };
  const uint32_t lead = b(pos);
  if (lead < 0x80) {
    pos += 1;
    return lead;
  }
  if (lead < 0xE0) {
    const uint32_t cp = ((lead & 0x1F) << 6) | (b(pos + 1) & 0x3F);
    pos += 2;
    return cp;
  }
  if (lead < 0xF0) {
    const uint32_t cp = ((lead & 0x0F) << 12) | ((b(pos + 1) & 0x3F) << 6) | (b(pos + 2) & 0x3F);
    pos += 3;
    return cp;
  }
  const uint32_t cp = ((lead & 0x07) << 18) | ((b(pos + 1) & 0x3F) << 12) |
                      ((b(pos + 2) & 0x3F) << 6) | (b(pos + 3) & 0x3F);
  pos += 4;
  return cp;
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    // ASCII runs are the common case: copy them without the full check.
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      out.push_back(text[pos++]);
      continue;
    }
    const int len = utf8_char_length(text.substr(pos));
    if (len == 0) {
      out.append("\xEF\xBF\xBD");
      pos += 1;
    } else {
      out.append(text.substr(pos, static_cast<size_t>(len)));
      pos += static_cast<size_t>(len);
    }
  }
  return out;
}

std::string lossy_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  const auto at = [&](size_t i) { return static_cast<unsigned char>(bytes[i]); };
  size_t pos = 0;
  while (pos < bytes.size()) {
    const unsigned char lead = at(pos);
    if (lead < 0x80) {
      out.push_back(static_cast<char>(lead));
      ++pos;
      continue;
    }
    // Length and the allowed range of the second byte (no overlongs, surrogates
    // or code points past U+10FFFF), per the Unicode "maximal subpart" rule.
    size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      need = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      need = 3;
      if (lead == 0xE0) lo = 0xA0;
      if (lead == 0xED) hi = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      need = 4;
      if (lead == 0xF0) lo = 0x90;
      if (lead == 0xF4) hi = 0x8F;
    }
    size_t got = 1;
    while (need && got < need && pos + got < bytes.size()) {
      const unsigned char c = at(pos + got);
      const bool ok = got == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
      if (!ok) break;
      ++got;
    }
    if (need && got == need)
      out.append(bytes.substr(pos, need));
    else
      out.append("\xEF\xBF\xBD");
    pos += got;
  }
  return out;
}

ByteLevelAlphabet::ByteLevelAlphabet() {
  reverse_.fill(-1);
  // Printable bytes keep their code point: '!'..'~', '¡'..'¬', '®'..'ÿ'.
  auto printable = [](int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  uint32_t shifted = 0x100;  // the others take U+0100, U+0101, ... in byte order
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = printable(b) ? static_cast<uint32_t>(b) : shifted++;
    append_utf8(cp, chars_[static_cast<size_t>(b)]);
    reverse_[cp] = static_cast<int16_t>(b);
  }
}

const ByteLevelAlphabet& ByteLevelAlphabet::get() {
  static const ByteLevelAlphabet alphabet;
  return alphabet;
}

void ByteLevelAlphabet::encode(std::string_view bytes, std::string& out) const {
  // Every alphabet character is one or two UTF-8 bytes (all are < U+0800).
  size_t n = out.size();
  out.resize(n + 2 * bytes.size());
  for (char c : bytes) {
    const std::string& ch = chars_[static_cast<unsigned char>(c)];
    out[n++] = ch[0];
    if (ch.size() == 2) out[n++] = ch[1];
  }
  out.resize(n);
}

bool ByteLevelAlphabet::decode(std::string_view token, std::string& out) const {
  const size_t start = out.size();
  size_t pos = 0;
  while (pos < token.size()) {
    const int byte = decode_char(next_code_point(token, pos));
    if (byte < 0) {
      out.resize(start);
      return false;
    }
    out.push_back(static_cast<char>(byte));
  }
  return true;
}

}  // namespace kiln::hf
