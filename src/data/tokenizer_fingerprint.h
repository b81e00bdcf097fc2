// A loaded tokenizer's identity in the form dataset manifests check it against.
#pragma once
#include "io/token_shards.h"
#include "tokenizer/tokenizer.h"

namespace kiln {

inline TokenizerFingerprint fingerprint_of(const Tokenizer& tokenizer) {
  return {tokenizer.path(), tokenizer.vocab_size(), tokenizer.checksum_hex()};
}

}  // namespace kiln
