// Shared parts of the Tokenizer interface: the vocabulary table, streaming
// decode, UTF-8 and SentencePiece-normalisation helpers, format detection and
// the llama2.c tokenizer.bin exporter.
#include "tokenizer/tokenizer.h"

#include <xxhash.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/llama2c_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"

namespace kiln {

namespace {
constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    size_t hit = text.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}
}  // namespace

int utf8_char_length(std::string_view text) {
  if (text.empty()) return 0;
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  auto trail = [&](size_t i) { return i < text.size() && (byte(i) & 0xC0) == 0x80; };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  uint32_t cp = 0;
  if ((lead & 0xE0) == 0xC0) {
    if (!trail(1)) return 0;
    cp = ((lead & 0x1Fu) << 6) | (byte(1) & 0x3Fu);
    return cp >= 0x80 ? 2 : 0;  // reject overlong forms
  }
  if ((lead & 0xF0) == 0xE0) {
    if (!trail(1) || !trail(2)) return 0;
    cp = ((lead & 0x0Fu) << 12) | ((byte(1) & 0x3Fu) << 6) | (byte(2) & 0x3Fu);
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    return cp >= 0x800 && !surrogate ? 3 : 0;
  }
  if ((lead & 0xF8) == 0xF0) {
    if (!trail(1) || !trail(2) || !trail(3)) return 0;
    cp = ((lead & 0x07u) << 18) | ((byte(1) & 0x3Fu) << 12) | ((byte(2) & 0x3Fu) << 6) |
         (byte(3) & 0x3Fu);
    return cp >= 0x10000 && cp <= 0x10FFFF ? 4 : 0;
  }
  return 0;
}

std::string normalize_for_sentencepiece(std::string_view text) {
  std::string out;
  if (text.empty()) return out;
  out.reserve(text.size() + text.size() / 4 + 3);
  out.append(kSpaceSymbol);  // add_dummy_prefix
  size_t pos = 0;
  while (pos < text.size()) {
    const int len = utf8_char_length(text.substr(pos));
    if (len == 0) {
      out.append(kReplacement);  // one U+FFFD per malformed byte
      pos += 1;
    } else if (text[pos] == ' ') {
      out.append(kSpaceSymbol);
      pos += 1;
    } else {
      out.append(text.substr(pos, static_cast<size_t>(len)));
      pos += static_cast<size_t>(len);
    }
  }
  return out;
}

int byte_piece_value(std::string_view piece) {
  // Exactly "<0x" + two upper-case hex digits + ">", as SentencePiece writes them.
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int hi = hex(piece[3]), lo = hex(piece[4]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

// --- Tokenizer ------------------------------------------------------------------

void Tokenizer::set_vocabulary(std::vector<std::string> pieces, std::vector<float> scores,
                               std::vector<PieceKind> kinds, int32_t unk, int32_t bos,
                               int32_t eos) {
  pieces_ = std::move(pieces);
  scores_ = std::move(scores);
  kinds_ = std::move(kinds);
  unk_id_ = unk;
  bos_id_ = bos;
  eos_id_ = eos;
  // Byte fallback needs every one of the 256 byte values: count distinct values,
  // not byte pieces, so a file that repeats <0x41> and lacks <0x42> cannot
  // pass for complete (encode would then emit no id, -1, for byte 0x42).
  std::array<bool, 256> seen{};
  byte_pieces_ = 0;
  for (size_t id = 0; id < kinds_.size(); ++id) {
    if (kinds_[id] != PieceKind::byte) continue;
    const int value = byte_piece_value(pieces_[id]);
    if (value >= 0 && !seen[size_t(value)]) {
      seen[size_t(value)] = true;
      ++byte_pieces_;
    }
  }
}

void Tokenizer::check_ids(std::span<const int32_t> ids) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size()) {
      fail_input(path_, "token id at position " + std::to_string(i) + " is out of range",
                 "0 <= id < " + std::to_string(vocab_size()), std::to_string(ids[i]));
    }
  }
}

std::string Tokenizer::decode_piece(int32_t prev, int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail_input(path_, "token id out of range", "0 <= id < " + std::to_string(vocab_size()),
               std::to_string(id));
  switch (kind(id)) {
    case PieceKind::control:
      return "";
    case PieceKind::unknown:
      return " \xE2\x81\x87 ";  // SentencePiece's default unk surface " ⁇ "
    case PieceKind::byte:
      return std::string(1, static_cast<char>(byte_piece_value(piece(id))));
    default:
      break;
  }
  std::string text = replace_all(piece(id), kSpaceSymbol, " ");
  const bool at_start = prev < 0 || (bos_id_ >= 0 && prev == bos_id_);
  if (at_start && !text.empty() && text[0] == ' ') text.erase(0, 1);
  return text;
}

std::string Tokenizer::checksum_hex() const {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(checksum_));
  return buf;
}

// --- loading ----------------------------------------------------------------------

namespace {
std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input(path, "cannot open tokenizer: " + std::string(std::strerror(errno)));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail_input(path, "cannot read tokenizer");
  return bytes;
}

// A model directory holds tokenizer.json (Hugging Face) or tokenizer.model.
std::string resolve_tokenizer_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return path;
  for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
    const fs::path candidate = fs::path(path) / name;
    if (fs::is_regular_file(candidate, ec)) return candidate.string();
  }
  fail_input(path, "directory has no tokenizer", "tokenizer.json or tokenizer.model", "neither");
}

bool looks_like_json_object(const std::string& bytes) {
  for (char c : bytes) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    return c == '{';
  }
  return false;
}

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  // tokenizer_config.json beside it names bos_token/eos_token in a model dir.
  const fs::path config = fs::path(path).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  return HfTokenizer::from_json(path, bytes,
                                fs::is_regular_file(config, ec) ? config.string() : std::string());
}
}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& requested) {
  const std::string path = resolve_tokenizer_path(requested);
  const std::string bytes = read_whole_file(path);
  if (bytes.empty()) fail_input(path, "tokenizer file is empty");
  const uint64_t checksum = XXH64(bytes.data(), bytes.size(), 0);

  // llama2.c's layout is checked first and strictly (it must account for every
  // byte), because its leading int32 can look like a protobuf tag or a '{'; a
  // SentencePiece ModelProto starts with field 1 (pieces), tag byte 0x0A.
  std::string llama2c_problem;
  auto llama2c = Llama2cTokenizer::parse(path, bytes, &llama2c_problem);
  if (llama2c) {
    llama2c->set_checksum(checksum);
    return llama2c;
  }
  if (looks_like_json_object(bytes)) {
    auto hf = load_tokenizer_json(path, bytes);
    hf->set_checksum(checksum);
    return hf;
  }
  if (static_cast<unsigned char>(bytes[0]) == 0x0A) {
    auto sp = SentencePieceTokenizer::from_serialized(path, bytes);
    sp->set_checksum(checksum);
    return sp;
  }
  fail_input(path, "not a SentencePiece .model or a llama2.c tokenizer.bin (as tokenizer.bin: " +
                       llama2c_problem + "), nor a tokenizer.json (a JSON object)");
}

// --- export -----------------------------------------------------------------------

void export_llama2c_tokenizer(const Tokenizer& tokenizer, const std::string& out_path) {
  // llama2.c's encoder is SentencePiece-style BPE by scores: a tokenizer.json
  // (byte-level pieces, merge ranks, no scores) would export to wrong ids.
  if (tokenizer.format() == "tokenizer.json")
    fail_input(tokenizer.path(), "cannot export to llama2.c tokenizer.bin",
               "a SentencePiece .model or tokenizer.bin", "a tokenizer.json");
  std::vector<std::string> tokens;
  tokens.reserve(static_cast<size_t>(tokenizer.vocab_size()));
  int32_t max_len = 0;
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    std::string t;
    if (id == tokenizer.bos_id()) {
      t = "\n<s>\n";
    } else if (id == tokenizer.eos_id()) {
      t = "\n</s>\n";
    } else {
      t = replace_all(tokenizer.piece(id), kSpaceSymbol, " ");
    }
    max_len = std::max<int32_t>(max_len, static_cast<int32_t>(t.size()));
    tokens.push_back(std::move(t));
  }
  AtomicFile out(out_path);
  // Little-endian int32/float32, which is every platform Kiln builds for.
  out.write(&max_len, sizeof(max_len));
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    const float score = tokenizer.score(id);
    const int32_t len = static_cast<int32_t>(tokens[static_cast<size_t>(id)].size());
    out.write(&score, sizeof(score));
    out.write(&len, sizeof(len));
    out.write(tokens[static_cast<size_t>(id)]);
  }
  out.commit();
}

}  // namespace kiln
