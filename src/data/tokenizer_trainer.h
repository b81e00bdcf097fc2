// Trains a SentencePiece BPE tokenizer with Llama's settings through the
// SentencePiece library (`kiln tokenizer train`).
//
// Settings (those of Llama 2's tokenizer and llama2.c's custom-vocabulary
// recipe): BPE, byte fallback (every byte has a piece, so no text is <unk>),
// digits split into single-digit pieces, identity normalisation (no NFKC, no
// whitespace folding) with a dummy-prefix space, ids unk=0 bos=1 eos=2 and no
// pad piece. Training sentences are the lines of the input documents.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/document_reader.h"

namespace kiln {

struct TokenizerTrainOptions {
  std::vector<std::string> inputs;  // files or directories (see expand_inputs)
  TextFormat format = TextFormat::automatic;
  std::string out_path;  // the .model file, written atomically
  int vocab_size = 4096;
  int threads = 0;                      // 0: all hardware threads
  uint64_t max_sentences = 5'000'000;   // SentencePiece samples this many lines at most
  double character_coverage = 0.99995;  // rarer characters are left to byte fallback
  bool progress = true;                 // progress line on stderr
  bool verbose = false;                 // pass SentencePiece's own log through instead
};

struct TokenizerTrainResult {
  int vocab_size = 0;
  int alphabet_size = 0;   // characters SentencePiece kept as pieces
  uint64_t sentences = 0;  // lines handed to SentencePiece
  uint64_t input_bytes = 0;
  double seconds = 0.0;
};

// Throws InputError for unusable inputs or a vocabulary size the corpus cannot
// support (the message says the workable range).
TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& options);

// The smallest vocabulary SentencePiece accepts with byte fallback for a
// corpus whose alphabet has `alphabet_size` characters: <unk> <s> </s>, the
// 256 byte pieces and the characters themselves (merges come on top).
inline int min_vocab_for_alphabet(int alphabet_size) { return 3 + 256 + alphabet_size; }

}  // namespace kiln
