// libFuzzer target: SentencePiece .model files (seeds: fuzz/corpus/sentencepiece).
// The protobuf parsing is the SentencePiece library's (not instrumented);
// Kiln's part is what it does with the vocabulary that comes out.
#include "fuzz_tokenizer.inc"
