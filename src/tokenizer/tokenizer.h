// The tokenizer interface Kiln's data pipeline, trainer and sampler speak.
//
// Three file formats load into it:
//   - SentencePiece `.model` (a serialized ModelProto): encoded and decoded by
//     the SentencePiece library itself, so Kiln's ids are SentencePiece's ids.
//   - llama2.c `tokenizer.bin` (scores + pieces, no normaliser spec): encoded by
//     Kiln's own BPE (llama2c_tokenizer.cpp), which reproduces SentencePiece's
//     BPE encoder for Llama-style models (identity normalisation, dummy-prefix
//     space, byte fallback). Tests check the two agree id for id.
//   - Hugging Face `tokenizer.json` (byte-level BPE: Qwen, Llama-3): encoded by
//     hf_tokenizer.cpp, checked against transformers.js; its conventions are
//     the Hugging Face library's, not the SentencePiece ones below.
//
// Text conventions (the first two formats, as SentencePiece does it):
//   encode: malformed UTF-8 bytes become U+FFFD (one per byte), spaces become
//           "▁", one "▁" is prepended to non-empty text, then BPE by scores;
//           characters outside the vocabulary fall back to <0xXX> byte pieces.
//   decode: control ids (<s>, </s>) vanish, "▁" becomes " ", the first piece's
//           leading space is dropped, runs of byte pieces are joined into
//           UTF-8 (malformed byte runs become U+FFFD).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

enum class PieceKind : uint8_t { normal, unknown, control, byte, unused };

struct EncodeOptions {
  bool bos = false, eos = false;
  // Special tokens written in the text ("<|im_start|>") become their ids; when
  // false they are encoded as plain text. Only tokenizer.json has them.
  bool parse_special = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text -> ids, optionally with BOS first and EOS last.
  virtual std::vector<int32_t> encode(std::string_view text, bool bos = false,
                                      bool eos = false) const = 0;
  // encode() with every option; formats without special-token parsing ignore it.
  virtual std::vector<int32_t> encode_with(std::string_view text,
                                           const EncodeOptions& options) const {
    return encode(text, options.bos, options.eos);
  }
  // Ids -> text. Every id must be < vocab_size() (InputError otherwise).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;

  // Streaming decode: the bytes token `id` adds after token `prev` (prev < 0 at
  // the start). Byte pieces come back as their raw byte, so a terminal joins a
  // multi-byte character from consecutive calls; a leading space is dropped at
  // the start and right after BOS, as llama2.c's run.c does. tokenizer.json
  // overrides it (byte-level tokens give their raw bytes).
  virtual std::string decode_piece(int32_t prev, int32_t id) const;

  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t unk_id() const { return unk_id_; }
  bool has_byte_fallback() const { return byte_pieces_ == 256; }

  // SentencePiece form of the piece ("▁" for a space), its score and kind.
  const std::string& piece(int32_t id) const { return pieces_.at(static_cast<size_t>(id)); }
  float score(int32_t id) const { return scores_.at(static_cast<size_t>(id)); }
  PieceKind kind(int32_t id) const { return kinds_.at(static_cast<size_t>(id)); }

  // Where it came from, in which format, and the xxh64 of the file's bytes
  // (dataset manifests record it to catch a tokenizer/data mismatch).
  const std::string& path() const { return path_; }
  const std::string& format() const { return format_; }
  uint64_t checksum() const { return checksum_; }
  std::string checksum_hex() const;
  void set_checksum(uint64_t checksum) { checksum_ = checksum; }

 protected:
  // Fills the shared tables; subclasses call this once after loading.
  void set_vocabulary(std::vector<std::string> pieces, std::vector<float> scores,
                      std::vector<PieceKind> kinds, int32_t unk, int32_t bos, int32_t eos);
  void check_ids(std::span<const int32_t> ids) const;

  std::string path_;
  std::string format_;
  uint64_t checksum_ = 0;

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<PieceKind> kinds_;
  int32_t unk_id_ = -1, bos_id_ = -1, eos_id_ = -1;
  int byte_pieces_ = 0;
};

// Loads a SentencePiece .model, a llama2.c tokenizer.bin or a Hugging Face
// tokenizer.json, telling them apart by content; a directory loads its
// tokenizer.json, else its tokenizer.model. InputError (naming the path) for a
// missing, empty, truncated or unrecognised file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// Writes llama2.c's tokenizer.bin for `tokenizer` (atomically):
//   int32 max_token_length, then per id: float32 score, int32 byte length, bytes.
// Pieces are written with "▁" replaced by " ", byte pieces as "<0xAB>" text,
// BOS as "\n<s>\n" and EOS as "\n</s>\n" -- byte for byte what llama2.c's
// tokenizer.py exports for the same .model.
void export_llama2c_tokenizer(const Tokenizer& tokenizer, const std::string& out_path);

// The byte value of a "<0xAB>" piece, or -1 if `piece` is not one.
int byte_piece_value(std::string_view piece);

// Strict UTF-8: the length (1-4) of the valid character starting at `text`,
// or 0 if the bytes there are malformed (overlong, surrogate, > U+10FFFF, cut).
int utf8_char_length(std::string_view text);

// SentencePiece's view of raw text before BPE: every malformed byte replaced
// by U+FFFD, every ' ' replaced by "▁", and one "▁" prepended when the text is
// non-empty (Llama's add_dummy_prefix).
std::string normalize_for_sentencepiece(std::string_view text);

}  // namespace kiln
