// A Kiln model as a llama.cpp GGUF file, and a GGUF file as a Kiln model.
//
// Architectures (general.architecture) as llama.cpp names them: "llama"
// (model_type llama or mistral; optional q/k/v biases), "qwen2" (q/k/v biases
// required) and "qwen3" (per-head q/k RMSNorm, no biases). Hyperparameters go
// to <arch>.context_length, .embedding_length, .block_count,
// .feed_forward_length, .attention.head_count, .attention.head_count_kv,
// .attention.key_length / .value_length (head_dim), .rope.dimension_count,
// .attention.layer_norm_rms_epsilon, .rope.freq_base and .vocab_size.
//
// Tensors (HF name -> GGUF name; GGUF dims are the PyTorch shape reversed):
//   model.embed_tokens.weight -> token_embd.weight, model.norm.weight ->
//   output_norm.weight, lm_head.weight -> output.weight (absent when tied: llama.cpp
//   then uses token_embd), and per layer N, blk.N.: input_layernorm -> attn_norm,
//   q_proj/k_proj/v_proj/o_proj -> attn_q/attn_k/attn_v/attn_output (.weight, and
//   .bias for q/k/v), q_norm/k_norm -> attn_q_norm/attn_k_norm,
//   post_attention_layernorm -> ffn_norm, gate_proj/up_proj/down_proj ->
//   ffn_gate/ffn_up/ffn_down.
//
// RoPE layout: Kiln (like HF) rotates halves (x[i], x[i + D/2]). llama.cpp's
// "llama" architecture uses ggml's normal RoPE, which rotates interleaved pairs
// (x[2i], x[2i+1]); its converter (convert_hf_to_gguf.py, LlamaModel) therefore
// permutes the rows of Wq (over head_count) and Wk (over head_count_kv) inside
// each head: GGUF row 2j <- HF row j, row 2j + 1 <- HF row D/2 + j, the same
// permutation as llama2.c's (hf_rows_to_llama2c). Export applies it to attn_q and
// attn_k (and their biases), import undoes it. "qwen2" and "qwen3" use NEOX RoPE,
// which rotates halves as HF does: no permutation.
//
// Llama 3 rope scaling: llama.cpp takes it as a tensor rope_freqs.weight [D/2]
// (F32) of per-frequency divisors (theta_i = base^(-2i/D) / factor_i), as its
// converter writes it; Kiln also writes the four parameters under kiln.rope_scaling.*
// so an import recovers them exactly. A file with the factors only (llama.cpp's
// converter) gets parameters fitted to them (only O / low_freq_factor and
// O / high_freq_factor matter; O is set to 8192), and every factor must be
// reproduced, or the file is refused.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "model/config.h"
#include "model/param_layout.h"

namespace kiln {

// "llama", "qwen2" or "qwen3" for the config; InputError naming `where` for an
// architecture (or combination of features) llama.cpp's names cannot hold.
std::string gguf_architecture(const ModelConfig& config, const std::string& where);

// Writes the model as GGUF v3 (atomically). Matrices are stored as `type`
// (a Q8_0 matrix whose rows are not a multiple of 32 falls back to F16, as
// llama.cpp's converter does); norms, biases and rope_freqs stay F32.
// `extra` (the tokenizer.* keys, general.name) is written after the
// hyperparameters. InputError when the model does not fit the format.
void save_gguf_model(const std::string& path, const ModelConfig& config, const ParamLayout& layout,
                     const float* params, GgmlType type,
                     const std::vector<std::pair<std::string, GgufValue>>& extra);

// True when the file starts with the GGUF magic (never throws).
bool is_gguf_file(const std::string& path);

struct GgufModel {
  ModelConfig config;         // name = the path, model_type = the architecture
  std::vector<float> params;  // ParamLayout(config).total() floats, HF RoPE layout
};

// Reads the hyperparameters (every one validated; an architecture, rope type or
// partial rotary Kiln does not implement is an InputError naming the key), then
// every tensor with its shape against them (F32/F16/BF16/Q8_0 dequantized to
// fp32, finite values), refusing missing and unexpected tensors.
GgufModel load_gguf_model(const std::string& path);

}  // namespace kiln
