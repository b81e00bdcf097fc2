// tokenizer.json "normalizer": rewrites each stretch of text between added
// tokens before pre-tokenization. Supported: NFC, NFD, NFKC, NFKD (utf8proc),
// Prepend, Replace (String or Regex pattern), Sequence, and null.
#pragma once
#include <memory>
#include <string>

#include "tokenizer/hf_json.h"

namespace kiln::hf {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// nullptr for a null normalizer; InputError naming the path for anything else
// Kiln does not implement.
std::unique_ptr<Normalizer> make_normalizer(const JsonAt& spec);

}  // namespace kiln::hf
