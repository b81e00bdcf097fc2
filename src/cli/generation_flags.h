// What `kiln sample` and `kiln chat` share: the device / dtype / sampling flags,
// the model directory's defaults under them (generation_config.json), and loading
// a model, its tokenizer and a Generator on the chosen backend.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/backend_factory.h"
#include "infer/generator.h"
#include "infer/model_dir_info.h"
#include "tokenizer/tokenizer.h"
#include "train/model_source.h"

namespace kiln::cli {

struct GenerationFlags {
  std::string model, tokenizer, device = "cpu", dtype = "auto", weights = "auto";
  int threads = 0;
  int context = 4096;  // KV-cache length (capped at the model's max_seq_len)
  float temperature = 1.0f, top_p = 0.9f, repetition_penalty = 1.0f;
  int top_k = 0;
  int max_tokens = 256;
  uint64_t seed = 42;
  // Set by add_generation_flags: which sampling flags were given on the command line.
  CLI::Option *temperature_opt = nullptr, *top_p_opt = nullptr, *top_k_opt = nullptr,
              *penalty_opt = nullptr, *max_tokens_opt = nullptr;
};

// --weights auto | fp32 | bf16 | int8 over --dtype (request.dtype, already parsed):
// the GEMM weights' form (int8 computes in fp32, fp32 and bf16 set the dtype).
// InputError when the two disagree.
WeightFormat resolve_weight_format(const std::string& weights, BackendRequest& request);

// --model, --tokenizer, --device, --dtype, --weights, --threads, --context, --temperature,
// --top-p, --top-k, --repetition-penalty, --seed, and the length flag `length_flag`
// ("--steps" or "--max-tokens").
void add_generation_flags(CLI::App& sub, GenerationFlags& flags, const std::string& length_flag);
// Only --model, --tokenizer, --device, --dtype, --weights, --threads.
void add_model_flags(CLI::App& sub, GenerationFlags& flags);

struct GenerationModel {
  ModelSource source;  // params released once uploaded
  ModelDirInfo info;   // of the model directory (empty for other sources)
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LoadedGenerator> loaded;
  std::vector<int32_t> stop_ids;  // eos ids of the directory, else the tokenizer's eos
  SamplingParams sampling;        // flags over the directory's defaults
  int max_tokens = 256;
};

// Validates the flags (InputError naming the flag), loads the model and its
// tokenizer (the flag, else the directory's, else the one recorded with the
// checkpoint), applies generation_config.json where a flag was not given
// (do_sample false means greedy), and builds the Generator.
GenerationModel load_generation_model(const GenerationFlags& flags);

}  // namespace kiln::cli
