// libFuzzer target: Hugging Face tokenizer.json files (seeds:
// fuzz/corpus/tokenizer_json, dictionary: fuzz/dict/tokenizer_json.dict). The
// JSON parsing is nlohmann_json's and the regexes PCRE2's; Kiln's part is
// reading the components and running the pipeline on what comes out.
#include "fuzz_tokenizer.inc"
