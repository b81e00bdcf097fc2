// Resolving `--model`: a preset name or config.json (fresh weights), a llama2.c
// .bin, a llama.cpp .gguf (F32/F16/BF16/Q8_0, dequantized), a Hugging Face model
// directory (config.json + model.safetensors or shards), a checkpoint directory, or a run directory (its newest complete checkpoint).
#pragma once
#include <string>
#include <vector>

#include "model/config.h"

namespace kiln {

struct ModelSource {
  ModelConfig config;
  std::vector<float> params;   // empty: initialise from a seed
  std::string description;     // for logs: where the weights came from
  std::string checkpoint_dir;  // set when they came from a checkpoint
  std::string tokenizer;       // tokenizer recorded with the checkpoint, if any
};

ModelSource resolve_model(const std::string& spec);
// As resolve_model, but weights are required (sample, export).
ModelSource resolve_trained_model(const std::string& spec);

}  // namespace kiln
