#include "infer/sample_text.h"

#include <algorithm>

#include "core/error.h"

namespace kiln {

SampleResult sample_text(Generator& generator, const Tokenizer& tokenizer, const SampleSettings& s,
                         const std::function<void(const std::string&)>& on_text) {
  if (tokenizer.vocab_size() > generator.config().vocab_size)
    fail_input(tokenizer.path(), "tokenizer has more tokens than the model's vocabulary",
               "<= " + std::to_string(generator.config().vocab_size), std::to_string(tokenizer.vocab_size()));
  // Documents start with BOS in training data, so a prompt does too.
  std::vector<int32_t> ids = tokenizer.encode(s.prompt, s.add_bos, /*eos=*/false);
  if (ids.empty())
    fail_input("--prompt", "encodes to no tokens and the tokenizer has no BOS to start from",
               "a non-empty prompt", "\"\"");
  std::vector<int> prompt(ids.begin(), ids.end());
  SampleResult result;
  result.text = s.prompt;
  if (on_text && !s.prompt.empty()) on_text(s.prompt);
  int prev = prompt.back();
  const int V = tokenizer.vocab_size();
  SamplingParams params;
  params.temperature = s.temperature;
  params.top_p = s.top_p;
  params.top_k = s.top_k;
  params.repetition_penalty = s.repetition_penalty;
  params.seed = s.seed;
  result.stats = generate(generator, prompt, s.steps, params, [&](int token) {
    if (s.stop_at_document_end && (token == tokenizer.bos_id() || token == tokenizer.eos_id())) return false;
    if (s.stop_at_document_end && std::find(s.stop_ids.begin(), s.stop_ids.end(), token) != s.stop_ids.end())
      return false;
    if (token >= V) return false;  // a model vocabulary padded beyond the tokenizer's
    const std::string piece = tokenizer.decode_piece(prev, token);
    prev = token;
    result.text += piece;
    if (on_text) on_text(piece);
    return true;
  });
  return result;
}

}  // namespace kiln
