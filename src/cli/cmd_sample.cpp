// kiln sample: generate text from a trained model with a KV cache, streaming it,
// on any backend (--device, --dtype). A Hugging Face model directory brings its
// tokenizer, its eos ids and its generation_config.json sampling defaults.
#include <cstdio>

#include "cli/command.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "infer/sample_text.h"

namespace kiln::cli {
namespace {

struct SampleArgs {
  GenerationFlags flags;
  std::string prompt;
};

int run_sample(const SampleArgs& a) {
  GenerationModel m = load_generation_model(a.flags);
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
                                  return [a]() { return run_sample(*a); };
                                }});

}  // namespace
}  // namespace kiln::cli
