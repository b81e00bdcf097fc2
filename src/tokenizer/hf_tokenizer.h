// A Hugging Face tokenizer.json (model BPE, byte-level or SentencePiece-style
// pieces): added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor
// on encode, decoder on decode, each step as the Hugging Face library does it.
// Every component or option Kiln does not implement is an InputError naming its
// JSON path, never a silently different encoding.
#pragma once
#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace kiln {

namespace hf {
class AddedTokens;
class BpeModel;
class Decoder;
class Normalizer;
class PreTokenizer;
}  // namespace hf

class HfTokenizer final : public Tokenizer {
 public:
  // `bytes` is tokenizer.json; `config_path` the tokenizer_config.json beside
  // it (empty when there is none), read for bos_token/eos_token.
  static std::unique_ptr<HfTokenizer> from_json(const std::string& path, const std::string& bytes,
                                                const std::string& config_path);
  ~HfTokenizer() override;

  std::vector<int32_t> encode(std::string_view text, bool bos, bool eos) const override;
  std::vector<int32_t> encode_with(std::string_view text,
                                   const EncodeOptions& options) const override;
  // Added and special tokens are shown (as the library's decode does by default).
  std::string decode(std::span<const int32_t> ids) const override;
  // Raw bytes of the token (a byte-level token may hold part of a character),
  // so the pieces of consecutive calls join into decode()'s text.
  std::string decode_piece(int32_t prev, int32_t id) const override;

  // "Split -> ByteLevel" (or "none"), for `kiln tokenizer info`.
  std::string pre_tokenizer_chain() const;
  int added_token_count() const;

 private:
  HfTokenizer();
  void load(const std::string& bytes, const std::string& config_path);
  void build_vocabulary(const std::string& config_path);
  void encode_text(std::string_view text, bool at_start, std::vector<int32_t>& out) const;

  std::unique_ptr<hf::AddedTokens> added_;
  std::unique_ptr<hf::Normalizer> normalizer_;
  std::unique_ptr<hf::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<hf::BpeModel> model_;
  std::unique_ptr<hf::Decoder> decoder_;
  std::vector<int32_t> prefix_ids_, suffix_ids_;  // post-processor template around $A
};

}  // namespace kiln
