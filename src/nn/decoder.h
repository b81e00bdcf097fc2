// Incremental decoding with a KV cache through the Backend: the same blocks as
// training (nn/blocks.h), the same kernels, dtypes and devices. A prompt is fed in
// one batched pass (GEMMs over its tokens, in chunks of at most `prefill_chunk`);
// each later token of up to `max_batch` sequences is one step of M = B GEMMs.
//
//   x = embed[token]                                         rows [N, C]
//   per layer: qkv_block_forward; RoPE at each token's position (rope_forward_at);
//              attention_decode (append k, v to the sequence's cache slot, attend
//              to positions 0..p); attention_output; ffn_block_forward
//   logits = Wcls rmsnorm(x_last) * norm                     [V] per sequence
//
// Every buffer, the caches included ([L][max_batch, max_len, Hkv, D] fp32), is
// allocated in the constructor; prefill() and decode() allocate nothing.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/param_layout.h"
#include "nn/blocks.h"

namespace kiln {

// How the GEMM weights of inference are held: in the backend's compute dtype, or
// as int8 copies (backend/int8_weights.h; activations fp32).
enum class WeightFormat { compute, int8 };

// Weights uploaded to a backend: the fp32 masters and, when the backend computes
// in bf16, their bf16 copy for the GEMMs; with WeightFormat::int8, int8 copies of
// the GEMM weights instead (quantized here, on the host). Owns that memory.
class DeviceWeights {
 public:
  // Throws InputError for int8 on a backend without int8 layers or computing in bf16.
  DeviceWeights(Backend& backend, const ModelConfig& config, const float* host_params,
                WeightFormat format = WeightFormat::compute);
  ~DeviceWeights();
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;
  WeightsView view() const { return {params_, compute_, int8_.empty() ? nullptr : int8_.data()}; }
  size_t bytes() const { return bytes_; }
  // The bytes a decode step streams: its GEMM weights in the form the GEMMs read.
  size_t gemm_weight_bytes() const { return gemm_bytes_; }

 private:
  Backend& backend_;
  float* params_ = nullptr;
  void* compute_ = nullptr;  // == params_ when the compute dtype is fp32
  void* int8_q_ = nullptr;   // int8 format: every GEMM weight's bytes, then their scales
  std::vector<Int8Matrix> int8_;
  size_t bytes_ = 0, gemm_bytes_ = 0;
};

class Decoder {
 public:
  // `weights` (backend memory, ParamLayout(config)'s layout) must outlive the
  // Decoder. max_len in [1, config.max_seq_len]; max_batch, prefill_chunk >= 1.
  // Throws InputError.
  Decoder(Backend& backend, const ModelConfig& config, const WeightsView& weights, int max_batch,
          int max_len, int prefill_chunk = 256);
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Feeds tokens[0..n) of sequence `slot` at positions pos0 .. pos0 + n - 1 and
  // returns the logits [V] (host memory, valid until the next call) after the last.
  // pos0 may be at most the number of positions the slot holds (it may go back to
  // rewind; later positions are then overwritten). Throws InputError for a bad
  // slot, token or position.
  const float* prefill(int slot, const int32_t* tokens, int n, int pos0);

  // One token for each of the sequences in slots 0 .. B-1: tokens[b] at
  // positions[b] (each at most what slot b holds). Returns logits [B, V] (host
  // memory, valid until the next call).
  const float* decode(const int32_t* tokens, const int32_t* positions, int B);

  // As prefill(), but returns the logits after every one of the n tokens: [n, V]
  // (for scoring text: row i predicts the token after tokens[i]). Its logits
  // buffer is allocated on the first call.
  std::vector<float> prefill_all(int slot, const int32_t* tokens, int n, int pos0);

  // Forgets what every slot holds.
  void reset();
  int filled(int slot) const { return filled_.at(size_t(slot)); }

  const ModelConfig& config() const { return config_; }
  int max_len() const { return max_len_; }
  int max_batch() const { return max_batch_; }
  size_t cache_bytes() const { return cache_bytes_; }
  size_t buffer_bytes() const { return buffer_bytes_; }

 private:
  // Runs B sequences of T tokens (B == 1 or T == 1) whose first cache slot is
  // `slot0`, starting at host positions pos[b]; logits of each sequence's last token.
  // With all_rows (B == 1), the logits of every token go to all_logits_ instead.
  const float* run(const int32_t* tokens, const int32_t* pos, int B, int T, int slot0,
                   bool all_rows = false);
  void check_prefill(int slot, const int32_t* tokens, int n, int pos0) const;
  void check_token(int32_t token) const;
  void* buffer(size_t bytes);

  Backend& backend_;
  ModelConfig config_;
  ParamLayout layout_;
  WeightsView weights_;
  DType dt_;
  int max_batch_, max_len_, chunk_;
  size_t cache_bytes_ = 0, buffer_bytes_ = 0;
  std::vector<void*> owned_;
  std::vector<int> filled_;  // per slot: positions 0 .. filled-1 are in its cache

  std::vector<float*> k_cache_, v_cache_;  // per layer [max_batch, max_len, Hkv, D]
  int32_t* tokens_ = nullptr;              // [rows]
  int32_t* pos_ = nullptr;                 // [max_batch]
  float* x_ = nullptr;                     // [rows, C] residual stream
  void* xn_ = nullptr;                     // [rows, C] compute dtype
  float* rstd_ = nullptr;                  // [rows]
  float* qkv_pre_ = nullptr;               // [rows, QKV] (qk_norm)
  float* qk_rstd_ = nullptr;               // [rows, H + Hkv] (qk_norm)
  float* qkv_ = nullptr;                   // [rows, QKV]
  float* att_ = nullptr;                   // [rows, H*D]
  void* att_c_ = nullptr;                  // [rows, H*D] compute dtype (== att_ for fp32)
  float* h13_ = nullptr;                   // [rows, 2F]
  void* g_ = nullptr;                      // [rows, F] compute dtype
  void* xf_ = nullptr;                     // [max_batch, C] compute dtype
  float* logits_ = nullptr;                // [max_batch, V]
  float* all_logits_ = nullptr;            // [chunk, V] (prefill_all)
  std::vector<float> logits_host_;         // [max_batch, V]
};

}  // namespace kiln
