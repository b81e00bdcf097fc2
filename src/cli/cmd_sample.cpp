// kiln sample: generate text from a trained model with a KV cache, streaming it,
// on any backend (--device, --dtype). A Hugging Face model directory brings its
// tokenizer, its eos ids and its generation_config.json sampling defaults.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "infer/sample_text.h"

namespace kiln::cli {
namespace {

struct SampleArgs {
  GenerationFlags flags;
  std::string prompt, prompts;
};

// --prompts FILE: every line a prompt, all generated as one batch; one JSON line
// {"prompt", "text", "tokens"} per prompt, in order, when all are done.
int run_batch(const SampleArgs& a, GenerationModel& m) {
  std::ifstream in(a.prompts, std::ios::binary);
  if (!in) fail_input(a.prompts, "cannot read the file");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  if (lines.empty()) fail_input(a.prompts, "holds no prompt", "one prompt per line", "none");
  std::vector<std::vector<int>> prompts;
  for (const std::string& line : lines) {
    const std::vector<int32_t> ids = m.tokenizer->encode(line, true, false);
    prompts.emplace_back(ids.begin(), ids.end());
  }
  Decoder decoder(*m.backend, m.source.config, m.loaded->weights().view(), int(prompts.size()),
                  m.loaded->generator().max_len());
  const int V = m.tokenizer->vocab_size();
  GenerationStats stats;
  const std::vector<std::vector<int>> out = generate_batch(
      decoder, prompts, m.max_tokens, m.sampling,
      [&](int, int token) {
        if (token == m.tokenizer->bos_id() || token >= V) return false;
        return std::find(m.stop_ids.begin(), m.stop_ids.end(), token) == m.stop_ids.end();
      },
      &stats);
  for (size_t b = 0; b < out.size(); ++b) {
    const std::vector<int32_t> ids(out[b].begin(), out[b].end());
    const nlohmann::json line = {
        {"prompt", lines[b]}, {"text", m.tokenizer->decode(ids)}, {"tokens", out[b].size()}};
    std::printf("%s\n", line.dump().c_str());
  }
  std::fflush(stdout);
  std::fprintf(stderr, "kiln: %zu prompts, %d tokens generated at %.1f tokens/s (prompts %d tokens at %.1f tokens/s) on %s\n",
               out.size(), stats.generated_tokens, stats.decode_tokens_per_s(),
               stats.prompt_tokens, stats.prefill_tokens_per_s(), m.backend->name().c_str());
  return 0;
}

int run_sample(const SampleArgs& a) {
  if (!a.prompt.empty() && !a.prompts.empty())
    fail_input("--prompts", "cannot be combined with --prompt", "one of them", "both");
  GenerationModel m = load_generation_model(a.flags);
  if (!a.prompts.empty()) return run_batch(a, m);
  SampleSettings settings;
  settings.prompt = a.prompt;
  settings.steps = m.max_tokens;
  settings.temperature = m.sampling.temperature;
  settings.top_p = m.sampling.top_p;
  settings.top_k = m.sampling.top_k;
  settings.repetition_penalty = m.sampling.repetition_penalty;
  settings.seed = m.sampling.seed;
  settings.stop_ids = m.stop_ids;
  SampleResult r =
      sample_text(m.loaded->generator(), *m.tokenizer, settings, [](const std::string& piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      });
  std::printf("\n");
  std::fflush(stdout);  // the text's last line before the stderr summary, also when both go to one file
  std::fprintf(stderr,
               "kiln: %d tokens generated at %.1f tokens/s (prompt %d tokens at %.1f tokens/s) on %s\n",
               r.stats.generated_tokens, r.stats.decode_tokens_per_s(), r.stats.prompt_tokens,
               r.stats.prefill_tokens_per_s(), m.backend->name().c_str());
  return 0;
}

RegisterCommand sample_command({"sample", "Generate text from a trained model",
                                [](CLI::App& sub) -> std::function<int()> {
                                  auto a = std::make_shared<SampleArgs>();
                                  add_generation_flags(sub, a->flags, "--steps");
                                  sub.add_option("--prompt", a->prompt, "Text to continue");
                                  sub.add_option("--prompts", a->prompts,
                                                 "File of prompts, one per line, generated as one batch (JSON lines out)");
                                  return [a]() { return run_sample(*a); };
                                }});

}  // namespace
}  // namespace kiln::cli
