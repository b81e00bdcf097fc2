// kiln eval: a model's perplexity on a text file, through the same decoder as
// sampling (so --device, --dtype and --weights int8 are measured as they run).
// The text is tokenized whole (BOS first where the tokenizer has one) and cut
// into windows of --seq tokens; each window starts with an empty cache, and
// every token of a window but its first is predicted from those before it:
//   nll = -sum log softmax(logits)[next token] / predictions,  ppl = exp(nll).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "cli/generation_flags.h"
#include "core/error.h"

namespace kiln::cli {
namespace {

struct EvalArgs {
  GenerationFlags flags;
  std::string text;
  int seq = 256;
  int64_t max_tokens = 0;  // 0 = the whole text
  bool json = false;
};

// -log p(next) from one row of logits, in double.
double token_nll(const float* logits, int V, int next) {
  double max = logits[0];
  for (int v = 1; v < V; ++v) max = std::max(max, double(logits[v]));
  double sum = 0;
  for (int v = 0; v < V; ++v) sum += std::exp(double(logits[v]) - max);
  return std::log(sum) + max - double(logits[next]);
}

int run_eval(EvalArgs a) {
  if (a.text.empty()) fail_input("--text", "is required", "a text file", "none");
  if (a.seq < 2) fail_input("--seq", "must be at least 2", ">= 2", std::to_string(a.seq));
  if (a.max_tokens < 0)
    fail_input("--max-tokens", "must be >= 0", ">= 0", std::to_string(a.max_tokens));
  std::ifstream in(a.text, std::ios::binary);
  if (!in) fail_input(a.text, "cannot read the file");
  std::stringstream buffer;
  buffer << in.rdbuf();

  a.flags.context = a.seq;
  GenerationModel m = load_generation_model(a.flags);
  const int seq = std::min(a.seq, m.source.config.max_seq_len);
  std::vector<int32_t> tokens = m.tokenizer->encode(buffer.str(), true, false);
  if (a.max_tokens > 0 && int64_t(tokens.size()) > a.max_tokens) tokens.resize(size_t(a.max_tokens));
  if (tokens.size() < 2)
    fail_input(a.text, "holds too little text to score", ">= 2 tokens", std::to_string(tokens.size()));

  Decoder& decoder = m.loaded->generator().decoder();
  const int V = m.source.config.vocab_size;
  double nll = 0;
  int64_t predictions = 0;
  const auto start = std::chrono::steady_clock::now();
  for (size_t at = 0; at + 1 < tokens.size(); at += size_t(seq)) {
    const int n = int(std::min(tokens.size() - at, size_t(seq)));
    if (n < 2) break;
    decoder.reset();
    const std::vector<float> logits = decoder.prefill_all(0, tokens.data() + at, n, 0);
    for (int i = 0; i + 1 < n; ++i) nll += token_nll(logits.data() + size_t(i) * V, V, tokens[at + i + 1]);
    predictions += n - 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double mean = nll / double(predictions);
  const nlohmann::json j = {{"model", m.source.config.name},
                            {"text", a.text},
                            {"backend", m.backend->name()},
                            {"weights", a.flags.weights},
                            {"seq", seq},
                            {"tokens", tokens.size()},
                            {"predictions", predictions},
                            {"nll", mean},
                            {"perplexity", std::exp(mean)},
                            {"bits_per_token", mean / std::log(2.0)},
                            {"tokens_per_s", seconds > 0 ? double(tokens.size()) / seconds : 0.0}};
  if (!a.json)
    std::printf("eval %s on %s: perplexity %.4f (nll %.5f nats over %lld predictions, windows of %d) "
                "on %s, %.0f tokens/s\n",
                m.source.config.name.c_str(), a.text.c_str(), std::exp(mean), mean,
                (long long)predictions, seq, m.backend->name().c_str(),
                j["tokens_per_s"].get<double>());
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

RegisterCommand eval_command({"eval", "Perplexity of a model on a text file (any device, dtype, int8 weights)",
                              [](CLI::App& sub) -> std::function<int()> {
                                auto a = std::make_shared<EvalArgs>();
                                add_model_flags(sub, a->flags);
                                sub.add_option("--text", a->text, "Text file to score")->required();
                                sub.add_option("--seq", a->seq,
                                               "Window length in tokens (capped at the model's max_seq_len)");
                                sub.add_option("--max-tokens", a->max_tokens,
                                               "Score only the first N tokens (0 = all)");
                                sub.add_flag("--json", a->json, "Print only the JSON line");
                                return [a]() { return run_eval(*a); };
                              }});

}  // namespace
}  // namespace kiln::cli
