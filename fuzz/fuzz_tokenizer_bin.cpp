// libFuzzer target: llama2.c tokenizer.bin files (seeds: fuzz/corpus/tokenizer_bin).
#include "fuzz_tokenizer.inc"
