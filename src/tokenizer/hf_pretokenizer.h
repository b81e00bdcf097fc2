// tokenizer.json "pre_tokenizer": cuts normalized text into words that BPE
// encodes one at a time. Supported: ByteLevel, Split, Digits, Metaspace,
// Sequence, and null.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/hf_json.h"

namespace kiln::hf {

struct Word {
  std::string text;
  bool first = false;  // starts at offset 0 of the caller's text (Metaspace "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `words` by their pieces, in order; empty pieces are dropped.
  virtual void apply(std::vector<Word>& words) const = 0;
  // "Split(Isolated) -> ByteLevel" for `kiln tokenizer info`.
  virtual std::string describe() const = 0;
  // True for ByteLevel: the words are then in GPT-2's byte alphabet.
  virtual bool byte_level() const { return false; }
};

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonAt& spec);

}  // namespace kiln::hf
