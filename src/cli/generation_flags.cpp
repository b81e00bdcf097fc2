#include "cli/generation_flags.h"

#include <algorithm>

#include "backend/backend_factory.h"
#include "core/error.h"
#include "infer/sampler.h"

namespace kiln::cli {

void add_model_flags(CLI::App& sub, GenerationFlags& f) {
  sub.add_option("--model", f.model,
                 "Checkpoint or run directory, Hugging Face model directory, or model.bin")
      ->required();
  sub.add_option("--tokenizer", f.tokenizer,
                 "Tokenizer (default: the model directory's, or the one recorded with the "
                 "checkpoint)");
  sub.add_option("--device", f.device, "cpu | cuda");
  sub.add_option("--dtype", f.dtype, "GEMM dtype: auto | fp32 | bf16 (auto: bf16 where native)");
  sub.add_option("--weights", f.weights,
                 "GEMM weights: auto (as --dtype) | fp32 | bf16 | int8 (W8A8, CPU)");
  sub.add_option("--threads", f.threads, "CPU threads (0 = all)");
}

void add_generation_flags(CLI::App& sub, GenerationFlags& f, const std::string& length_flag) {
  add_model_flags(sub, f);
  sub.add_option("--context", f.context,
                 "Longest sequence kept in the KV cache (capped at the model's max_seq_len)");
  f.temperature_opt = sub.add_option("--temperature", f.temperature, "0 = greedy");
  f.top_p_opt = sub.add_option("--top-p", f.top_p, "Nucleus sampling threshold (1 = off)");
  f.top_k_opt = sub.add_option("--top-k", f.top_k, "Keep the k most likely tokens (0 = off)");
  f.penalty_opt = sub.add_option("--repetition-penalty", f.repetition_penalty,
                                 "Penalty on tokens already in the sequence (1 = off)");
  sub.add_option("--seed", f.seed, "Sampling seed");
  f.max_tokens_opt = sub.add_option(length_flag, f.max_tokens, "Tokens to generate (at most)");
}

WeightFormat resolve_weight_format(const std::string& weights, BackendRequest& request) {
  if (weights == "auto") return WeightFormat::compute;
  DTypeChoice wanted;
  if (weights == "fp32" || weights == "int8")
    wanted = DTypeChoice::fp32;
  else if (weights == "bf16")
    wanted = DTypeChoice::bf16;
  else
    fail_input("--weights", "unknown weight format", "auto, fp32, bf16 or int8", weights);
  if (request.dtype != DTypeChoice::auto_ && request.dtype != wanted)
    fail_input("--dtype", "disagrees with --weights " + weights,
               wanted == DTypeChoice::bf16 ? "bf16 or auto" : "fp32 or auto",
               request.dtype == DTypeChoice::bf16 ? "bf16" : "fp32");
  request.dtype = wanted;
  return weights == "int8" ? WeightFormat::int8 : WeightFormat::compute;
}

GenerationModel load_generation_model(const GenerationFlags& f) {
  BackendRequest request;
  if (!parse_device_kind(f.device, &request.device))
    fail_input("--device", "unknown device", "cpu or cuda", f.device);
  if (!parse_dtype_choice(f.dtype, &request.dtype))
    fail_input("--dtype", "unknown dtype", "auto, fp32 or bf16", f.dtype);
  const WeightFormat format = resolve_weight_format(f.weights, request);
  if (f.threads < 0) fail_input("--threads", "must be >= 0", ">= 0", std::to_string(f.threads));
  if (f.context < 1) fail_input("--context", "must be >= 1", ">= 1", std::to_string(f.context));
  request.threads = f.threads;

  GenerationModel m;
  m.info = read_model_dir_info(f.model);
  // Sampling: the directory's generation_config.json under the flags given.
  SamplingParams& s = m.sampling;
  s.temperature = f.temperature;
  s.top_p = f.top_p;
  s.top_k = f.top_k;
  s.repetition_penalty = f.repetition_penalty;
  s.seed = f.seed;
  m.max_tokens = f.max_tokens;
  const ModelDirInfo& d = m.info;
  // A flag that was not registered (kiln eval has no sampling flags) counts as not given.
  const auto given = [](const CLI::Option* o) { return o != nullptr && o->count() > 0; };
  if (!given(f.temperature_opt)) {
    if (d.temperature) s.temperature = *d.temperature;
    if (d.do_sample && !*d.do_sample) s.temperature = 0.0f;
  }
  if (!given(f.top_p_opt) && d.top_p) s.top_p = *d.top_p;
  if (!given(f.top_k_opt) && d.top_k) s.top_k = *d.top_k;
  if (!given(f.penalty_opt) && d.repetition_penalty) s.repetition_penalty = *d.repetition_penalty;
  if (!given(f.max_tokens_opt) && d.max_new_tokens) m.max_tokens = *d.max_new_tokens;
  validate_sampling(s.temperature, s.top_p, s.top_k);
  std::vector<float> none;
  apply_repetition_penalty(none.data(), 0, nullptr, 0, s.repetition_penalty);
  if (m.max_tokens < 0)
    fail_input(f.max_tokens_opt ? f.max_tokens_opt->get_name() : "--max-tokens", "must be >= 0", ">= 0", std::to_string(m.max_tokens));

  m.source = resolve_trained_model(f.model);
  std::string tokenizer_path = f.tokenizer;
  if (tokenizer_path.empty()) tokenizer_path = d.tokenizer;
  if (tokenizer_path.empty()) tokenizer_path = m.source.tokenizer;
  if (tokenizer_path.empty())
    fail_input(f.model, "no tokenizer with this model",
               "--tokenizer PATH (tokenizer.json, .model or tokenizer.bin)", "none");
  m.tokenizer = load_tokenizer(tokenizer_path);
  if (m.tokenizer->vocab_size() > m.source.config.vocab_size)
    fail_input(tokenizer_path, "tokenizer has more tokens than the model's vocabulary",
               "<= " + std::to_string(m.source.config.vocab_size),
               std::to_string(m.tokenizer->vocab_size()));
  m.stop_ids = d.eos_ids;
  if (m.stop_ids.empty() && m.tokenizer->eos_id() >= 0) m.stop_ids.push_back(m.tokenizer->eos_id());

  m.backend = make_backend(request);
  const int max_len = std::min(f.context, m.source.config.max_seq_len);
  m.loaded = std::make_unique<LoadedGenerator>(*m.backend, m.source.config,
                                               m.source.params.data(), max_len, format);
  m.source.params = std::vector<float>();  // the backend holds its own copy now
  return m;
}

}  // namespace kiln::cli
