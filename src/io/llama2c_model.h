// llama2.c model files (.bin): import of versions 0, 1 and 2, export of 0 and 1.
//
// v0 ("legacy", what llama2.c's run.c reads): 7 int32
//     dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//   (vocab_size < 0 means the classifier is NOT shared with the embedding and is
//   stored at the end), then fp32 arrays:
//     token_embedding [V, C], rms_att [L, C], wq [L, q_dim, C], wk [L, kv_dim, C],
//     wv [L, kv_dim, C], wo [L, C, q_dim], rms_ffn [L, C], w1 [L, F, C],
//     w2 [L, C, F], w3 [L, F, C], rms_final [C],
//     freq_cis_real [seq_len, D/2], freq_cis_imag [seq_len, D/2], wcls [V, C] if not shared.
// v1: uint32 magic 0x616b3432 ("ak42" read as a little-endian uint32), int32
//   version = 1, the same 7 int32 (vocab_size positive), uint8 shared_classifier,
//   zeros up to a 256-byte header; then fp32:
//     rms_att [L, C], rms_ffn [L, C], rms_final [C], token_embedding [V, C],
//     wq [L, ...], wk [L, ...], wv [L, ...], wo [L, ...], w1 [L, ...], w2 [L, ...],
//     w3 [L, ...], wcls [V, C] if not shared.       (no RoPE tables)
// v2 (Q8_0): as v1 with version = 2 and an int32 group_size right after the
//   shared_classifier byte (byte offset 37, unaligned), header still 256 bytes;
//   then fp32 rms_att, rms_ffn, rms_final; then each matrix in v1's order
//   (token_embedding, wq of every layer, ..., w3 of every layer, wcls if not
//   shared), every layer's tensor quantised on its own: numel int8 values
//   followed by numel / group_size fp32 scales; value = int8 * scale[i / group_size].
// These layouts follow llama2.c's export.py (legacy_export, version1_export,
// version2_export) and run.c / runq.c's memory_map_weights.
//
// Mapping to Kiln (HF names): w1 = gate_proj, w3 = up_proj, w2 = down_proj;
// head_dim = dim / n_heads; rope_theta = 10000 and norm_eps = 1e-5 (llama2.c
// hard-codes both and stores neither).
// RoPE: llama2.c rotates interleaved pairs (x[2i], x[2i+1]); Kiln, like HF,
// rotates halves (x[i], x[i + D/2]). Import permutes the rows of Wq and Wk inside
// every head (HF row j <- llama2.c row 2j, HF row D/2 + j <- llama2.c row 2j + 1);
// export applies the inverse, so q.k scores are unchanged.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/param_layout.h"

namespace kiln {

struct ImportedModel {
  ModelConfig config;         // tie_embeddings from the file, name = the path
  std::vector<float> params;  // ParamLayout(config).total() floats, HF RoPE convention
  int format_version = 0;     // 0, 1 or 2 as found in the file
};

// True when the file starts with llama2.c's "ak42" magic, or has a legacy
// header whose implied size matches the file size exactly. Never throws for a
// missing or odd file (returns false).
bool is_llama2c_file(const std::string& path);

// Validates the header (positive sizes, n_kv_heads | n_heads, n_heads | dim),
// then that the file size is exactly what the header implies (64-bit,
// overflow-checked), then reads every tensor and checks it is finite.
// Every problem is an InputError naming the file.
ImportedModel load_llama2c(const std::string& path);

// Writes a legacy v0 file that llama2.c's run.c reads (atomic write). The
// config must be expressible: head_dim == dim / n_heads, rope_theta == 10000,
// norm_eps == 1e-5 (else InputError). The classifier is stored at the end with
// a negative vocab_size when the model is untied.
void save_llama2c_v0(const std::string& path, const ModelConfig& config, const ParamLayout& layout,
                     const float* params);
// Same content as a v1 file (magic, version, 256-byte header).
void save_llama2c_v1(const std::string& path, const ModelConfig& config, const ParamLayout& layout,
                     const float* params);

// Row permutations of one projection matrix [n_heads * head_dim, cols]
// between the two RoPE conventions (see above). src and dst must not alias.
void llama2c_rows_to_hf(const float* src, float* dst, int n_heads, int head_dim, int64_t cols);
void hf_rows_to_llama2c(const float* src, float* dst, int n_heads, int head_dim, int64_t cols);

}  // namespace kiln
