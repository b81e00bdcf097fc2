// Text in, text out: encode a prompt, decode with the KV-cache generator,
// stream the text as it is produced. Used by `kiln sample` and by the trainer's
// periodic samples.
#pragma once
#include <functional>
#include <cstdint>
#include <string>
#include <vector>

#include "infer/generator.h"
#include "tokenizer/tokenizer.h"

namespace kiln {

struct SampleSettings {
  std::string prompt;
  int steps = 256;
  float temperature = 1.0f;
  float top_p = 0.9f;
  int top_k = 0;                     // 0 = off
  float repetition_penalty = 1.0f;   // 1 = off
  uint64_t seed = 42;
  bool stop_at_document_end = true;  // a generated BOS or EOS (or a stop id) ends the text
  std::vector<int32_t> stop_ids;     // more ids that end the text (a model's eos_token_id list)
  bool add_bos = true;               // the prompt starts with the tokenizer's BOS
};

struct SampleResult {
  std::string text;  // the prompt followed by the generated text
  GenerationStats stats;
};

// on_text receives each new piece of text (nullable).
SampleResult sample_text(Generator& generator, const Tokenizer& tokenizer, const SampleSettings& settings,
                         const std::function<void(const std::string&)>& on_text);

}  // namespace kiln
