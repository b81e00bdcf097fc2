// A SentencePiece .model, encoded and decoded by the SentencePiece library.
#pragma once
#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace kiln {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // `bytes` is the file's content (a serialized ModelProto). InputError if the
  // library rejects it or it has no usable vocabulary.
  static std::unique_ptr<SentencePieceTokenizer> from_serialized(const std::string& path,
                                                                 const std::string& bytes);
  ~SentencePieceTokenizer() override;

  std::vector<int32_t> encode(std::string_view text, bool bos, bool eos) const override;
  std::string decode(std::span<const int32_t> ids) const override;

 private:
  SentencePieceTokenizer();
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

// Keeps the SentencePiece library quiet (it logs at INFO level to std::cerr by
// default) unless `verbose`.
void set_sentencepiece_logging(bool verbose);

}  // namespace kiln
