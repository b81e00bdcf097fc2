// Model weights as a Hugging Face-loadable safetensors file + config.json.
//
// Every ParamInfo of the ParamLayout is written as its own F32 tensor under its
// HF name (q_proj, k_proj, v_proj and gate_proj, up_proj separately, although
// Kiln stores each group adjacent in memory). With tied embeddings there is no
// lm_head.weight tensor, which is what transformers expects when
// tie_word_embeddings = true. With config.json from config_to_hf_json the
// directory loads with transformers.LlamaForCausalLM.from_pretrained(dir).
#pragma once
#include <string>

#include "io/file_util.h"
#include "model/config.h"
#include "model/param_layout.h"

namespace kiln {

// Writes params (layout.total() floats) to `path` atomically.
FileDigest save_model_safetensors(const std::string& path, const ModelConfig& config,
                                  const ParamLayout& layout, const float* params);

// Fills params (layout.total() floats). Every expected tensor must be present
// with the expected shape (F32, BF16 or F16 in the file), all values finite,
// and no unexpected tensor may be present (HF's rotary_emb.inv_freq buffers
// are tolerated). Errors name the tensor and the expected vs actual shape.
void load_model_safetensors(const std::string& path, const ModelConfig& config,
                            const ParamLayout& layout, float* params);

// config.json in Hugging Face's LlamaConfig form, written atomically.
FileDigest save_hf_config(const std::string& path, const ModelConfig& config);

// <dir>/model.safetensors + <dir>/config.json (dir is created if missing).
void save_hf_model_dir(const std::string& dir, const ModelConfig& config, const ParamLayout& layout,
                       const float* params);

// Throws InputError naming the tensor if any value is NaN or infinite.
void check_finite(const std::string& where, const std::string& tensor, const float* data,
                  int64_t count);

}  // namespace kiln
