// A Hugging Face model directory as a model source: config.json (LlamaConfig,
// Qwen2Config, Qwen3Config, MistralConfig fields) with the weights in
// model.safetensors, or in the shards that model.safetensors.index.json's
// weight_map names. F32, BF16 and F16 tensors are converted to fp32 once, at load.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"

namespace kiln {

// dir holds config.json and model.safetensors or model.safetensors.index.json.
bool is_hf_model_dir(const std::string& dir);

struct HfModel {
  ModelConfig config;
  std::vector<float> params;  // ParamLayout(config).total() floats
};

// Reads and validates everything before returning: the config (unimplemented
// fields named), every tensor's presence and shape against the config, no extra
// tensors (HF's rotary_emb.inv_freq buffers, and a tied model's lm_head.weight
// equal to its embedding, are tolerated), dtype F32/BF16/F16, finite values, and
// every shard the index lists. Each failure is an InputError naming the file and
// the tensor.
HfModel load_hf_model_dir(const std::string& dir);

}  // namespace kiln
