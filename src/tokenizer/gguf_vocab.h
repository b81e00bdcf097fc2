// A tokenizer as the tokenizer.ggml.* metadata llama.cpp reads from a GGUF file.
//
// SentencePiece .model and llama2.c tokenizer.bin -> tokenizer.ggml.model "llama"
// (llama.cpp's SPM tokenizer): tokens (pieces with "▁"), scores, token_type.
// Hugging Face tokenizer.json (byte-level BPE) -> "gpt2" (llama.cpp's BPE
// tokenizer): tokens, merges ("a b"), token_type, and the pre-tokenizer name
// tokenizer.ggml.pre llama.cpp selects its splitting regex by ("qwen2" for
// Qwen2/Qwen3, "llama-bpe" for Llama 3). token_type uses llama.cpp's ids:
// 1 normal, 2 unknown, 3 control (special added tokens, <s>, </s>),
// 4 user-defined (non-special added tokens), 5 unused, 6 byte.
// The token list is padded to the model's vocabulary with "[PAD<id>]" unused
// tokens (as llama.cpp's converter does), because llama.cpp takes n_vocab
// from its length and checks token_embd against it. bos/eos/unknown/padding ids
// and add_bos_token / add_eos_token come from the tokenizer and, for a
// tokenizer.json, its tokenizer_config.json.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

namespace kiln {

// InputError naming the tokenizer when it has more tokens than vocab_size or
// its tokenizer.json cannot be read. model_type ("llama", "qwen2", "qwen3")
// picks tokenizer.ggml.pre for a tokenizer.json.
std::vector<std::pair<std::string, GgufValue>> gguf_tokenizer_metadata(
    const Tokenizer& tokenizer, int vocab_size, const std::string& model_type);

}  // namespace kiln
