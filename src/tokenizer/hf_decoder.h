// tokenizer.json "decoder": turns the pieces of a list of ids back into text.
// Supported: ByteLevel, ByteFallback, Metaspace, Fuse, Strip, Replace,
// Sequence (and null: pieces joined with spaces, as the library does).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/hf_json.h"

namespace kiln::hf {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token list in place, as the library's decode_chain does.
  // `at_start`: tokens[0] is the first of the text (Metaspace drops its space).
  // `raw`: bytes as they are, for streaming (no U+FFFD for a cut character).
  virtual void decode(std::vector<std::string>& tokens, bool at_start, bool raw) const = 0;
  virtual bool byte_level() const { return false; }
};

std::unique_ptr<Decoder> make_decoder(const JsonAt& spec);

}  // namespace kiln::hf
