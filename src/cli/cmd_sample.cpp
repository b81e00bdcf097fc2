// kiln sample: generate text from a trained model with a KV cache, streaming it,
// on any backend (--device, --dtype).
#include <cstdio>

#include "backend/backend_factory.h"
#include "cli/command.h"
#include "core/error.h"
#include "infer/sample_text.h"
#include "train/model_source.h"

namespace kiln::cli {
namespace {

struct SampleArgs {
  std::string model, tokenizer, device = "cpu", dtype = "auto";
  SampleSettings settings;
  int threads = 0;
};

int run_sample(SampleArgs a) {
  BackendRequest request;
  if (!parse_device_kind(a.device, &request.device))
    fail_input("--device", "unknown device", "cpu or cuda", a.device);
  if (!parse_dtype_choice(a.dtype, &request.dtype))
    fail_input("--dtype", "unknown dtype", "auto, fp32 or bf16", a.dtype);
  if (a.settings.steps < 0) fail_input("--steps", "must be >= 0", ">= 0", std::to_string(a.settings.steps));
  if (a.threads < 0) fail_input("--threads", "must be >= 0", ">= 0", std::to_string(a.threads));
  request.threads = a.threads;
  ModelSource source = resolve_trained_model(a.model);
  std::string tokenizer_path = a.tokenizer.empty() ? source.tokenizer : a.tokenizer;
  if (tokenizer_path.empty())
    fail_input(a.model, "no tokenizer recorded with this model", "--tokenizer PATH (.model or tokenizer.bin)", "none");
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(tokenizer_path);
  std::unique_ptr<Backend> backend = make_backend(request);
  const int max_len = source.config.max_seq_len;
  LoadedGenerator loaded(*backend, source.config, source.params.data(), max_len);
  source.params = std::vector<float>();  // the backend holds its own copy now
  Generator& generator = loaded.generator();
  SampleResult r = sample_text(generator, *tokenizer, a.settings, [](const std::string& piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  });
  std::printf("\n");
  std::fflush(stdout);  // the text's last line before the stderr summary, also when both go to one file
  std::fprintf(stderr, "kiln: %d tokens generated at %.1f tokens/s (prompt %d tokens at %.1f tokens/s) on %s\n",
               r.stats.generated_tokens, r.stats.decode_tokens_per_s(), r.stats.prompt_tokens,
               r.stats.prefill_tokens_per_s(), backend->name().c_str());
  return 0;
}

RegisterCommand sample_command({"sample", "Generate text from a trained model",
                                [](CLI::App& sub) -> std::function<int()> {
                                  auto a = std::make_shared<SampleArgs>();
                                  sub.add_option("--model", a->model, "Checkpoint or run directory, or model.bin")->required();
                                  sub.add_option("--tokenizer", a->tokenizer, "Tokenizer (default: the one recorded with the checkpoint)");
                                  sub.add_option("--prompt", a->settings.prompt, "Text to continue");
                                  sub.add_option("--steps", a->settings.steps, "Tokens to generate");
                                  sub.add_option("--temperature", a->settings.temperature, "0 = greedy");
                                  sub.add_option("--top-p", a->settings.top_p, "Nucleus sampling threshold (1 = off)");
                                  sub.add_option("--seed", a->settings.seed, "Sampling seed");
                                  sub.add_option("--threads", a->threads, "Threads (0 = all)");
                                  sub.add_option("--device", a->device, "cpu | cuda");
                                  sub.add_option("--dtype", a->dtype, "GEMM dtype: auto | fp32 | bf16 (auto: bf16 where native)");
                                  return [a]() { return run_sample(*a); };
                                }});

}  // namespace
}  // namespace kiln::cli
