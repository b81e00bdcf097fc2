#include "nn/decoder.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "backend/int8_weights.h"
#include "core/error.h"

namespace kiln {

namespace {

// The GEMM weights of a model, in WeightsView::int8's order: offset, rows, columns.
struct GemmTensor {
  int64_t offset, rows, cols;
};

std::vector<GemmTensor> gemm_tensors(const ModelConfig& c, const ParamLayout& layout) {
  std::vector<GemmTensor> t;
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerOffsets& o = layout.layer(l);
    t.push_back({o.wqkv, c.qkv_dim(), c.dim});
    t.push_back({o.wo, c.dim, c.q_dim()});
    t.push_back({o.w13, 2 * int64_t(c.hidden_dim), c.dim});
    t.push_back({o.w2, c.dim, c.hidden_dim});
  }
  t.push_back({layout.classifier(), c.vocab_size, c.dim});
  return t;
}

}  // namespace

DeviceWeights::DeviceWeights(Backend& backend, const ModelConfig& config, const float* host_params,
                             WeightFormat format)
    : backend_(backend) {
  if (host_params == nullptr) fail_input("weights", "no parameters given");
  const ParamLayout layout(config);
  const int64_t n = layout.total();
  const DType dt = backend.compute_dtype();
  const std::vector<GemmTensor> gemms = gemm_tensors(config, layout);
  if (format == WeightFormat::int8) {
    if (!backend.caps().int8_linear)
      fail_input("--weights", "int8 weights need a backend with int8 layers", "the cpu device",
                 backend.name());
    if (dt != DType::f32)
      fail_input("--weights", "int8 layers take fp32 activations", "--dtype fp32",
                 dtype_name(dt));
  }
  // Quantized on the host first: a non-finite weight throws before anything is allocated.
  std::vector<uint8_t> host_int8;
  std::vector<std::pair<size_t, size_t>> int8_at;  // per GEMM tensor: q and scale offsets
  if (format == WeightFormat::int8) {
    size_t q_bytes = 0, s_bytes = 0;
    for (const GemmTensor& g : gemms) {
      q_bytes += int8_q_bytes(g.rows, g.cols);
      s_bytes += int8_scale_bytes(g.rows, g.cols);
    }
    host_int8.resize(q_bytes + s_bytes);
    size_t q_at = 0, s_at = q_bytes;
    for (const GemmTensor& g : gemms) {
      quantize_int8_weights(host_int8.data() + q_at,
                            reinterpret_cast<float*>(host_int8.data() + s_at),
                            host_params + g.offset, g.rows, g.cols);
      int8_at.emplace_back(q_at, s_at);
      q_at += int8_q_bytes(g.rows, g.cols);
      s_at += int8_scale_bytes(g.rows, g.cols);
    }
  }
  params_ = static_cast<float*>(backend.alloc(size_t(n) * sizeof(float)));
  bytes_ = size_t(n) * sizeof(float);
  backend.upload(params_, host_params, size_t(n) * sizeof(float));
  if (format == WeightFormat::int8) {
    int8_q_ = backend.alloc(host_int8.size());
    backend.upload(int8_q_, host_int8.data(), host_int8.size());
    bytes_ += host_int8.size();
    gemm_bytes_ = host_int8.size();
    const char* base = static_cast<const char*>(int8_q_);
    for (const auto& [q_at, s_at] : int8_at)
      int8_.push_back({reinterpret_cast<const uint8_t*>(base + q_at),
                       reinterpret_cast<const float*>(base + s_at)});
  } else {
    for (const GemmTensor& g : gemms) gemm_bytes_ += size_t(g.rows * g.cols) * dtype_size(dt);
  }
  if (dt == DType::f32) {
    compute_ = params_;
  } else {
    compute_ = backend.alloc(size_t(n) * dtype_size(dt));
    bytes_ += size_t(n) * dtype_size(dt);
    backend.cast(compute_, dt, params_, n);
  }
}

DeviceWeights::~DeviceWeights() {
  if (int8_q_ != nullptr) backend_.release(int8_q_);
  if (compute_ != params_) backend_.release(compute_);
  backend_.release(params_);
}

Decoder::Decoder(Backend& backend, const ModelConfig& config, const WeightsView& weights,
                 int max_batch, int max_len, int prefill_chunk)
    : backend_(backend),
      config_(config),
      layout_(config),
      weights_(weights),
      dt_(backend.compute_dtype()),
      max_batch_(max_batch),
      max_len_(max_len),
      chunk_(prefill_chunk) {
  config_.validate("decoder config");
  if (weights.params == nullptr || weights.params_compute == nullptr)
    fail_input("decoder", "no parameters given");
  if (max_len < 1 || max_len > config_.max_seq_len)
    fail_input("decoder",
               "max_len must be in [1, max_seq_len]; raise max_seq_len or shorten the run",
               "1.." + std::to_string(config_.max_seq_len), std::to_string(max_len));
  if (max_batch < 1)
    fail_input("decoder", "max_batch must be positive", ">= 1", std::to_string(max_batch));
  if (prefill_chunk < 1)
    fail_input("decoder", "prefill chunk must be positive", ">= 1", std::to_string(prefill_chunk));
  chunk_ = std::min(chunk_, max_len_);
  const int64_t rows = std::max(chunk_, max_batch_);
  const int64_t C = config_.dim, F = config_.hidden_dim, QKV = config_.qkv_dim(),
                Q = config_.q_dim(), V = config_.vocab_size;
  const size_t f = sizeof(float), c = dtype_size(dt_);
  const size_t cache = size_t(max_batch_) * max_len_ * config_.n_kv_heads * config_.head_dim * f;
  for (int l = 0; l < config_.n_layers; ++l) {
    k_cache_.push_back(static_cast<float*>(buffer(cache)));
    v_cache_.push_back(static_cast<float*>(buffer(cache)));
  }
  cache_bytes_ = 2 * cache * config_.n_layers;
  tokens_ = static_cast<int32_t*>(buffer(rows * sizeof(int32_t)));
  pos_ = static_cast<int32_t*>(buffer(max_batch_ * sizeof(int32_t)));
  x_ = static_cast<float*>(buffer(rows * C * f));
  xn_ = buffer(rows * C * c);
  rstd_ = static_cast<float*>(buffer(rows * f));
  if (config_.qk_norm) {
    qkv_pre_ = static_cast<float*>(buffer(rows * QKV * f));
    qk_rstd_ = static_cast<float*>(buffer(rows * (config_.n_heads + config_.n_kv_heads) * f));
  }
  qkv_ = static_cast<float*>(buffer(rows * QKV * f));
  att_ = static_cast<float*>(buffer(rows * Q * f));
  att_c_ = dt_ == DType::f32 ? static_cast<void*>(att_) : buffer(rows * Q * c);
  h13_ = static_cast<float*>(buffer(rows * 2 * F * f));
  g_ = buffer(rows * F * c);
  xf_ = buffer(max_batch_ * C * c);
  logits_ = static_cast<float*>(buffer(max_batch_ * V * f));
  logits_host_.resize(size_t(max_batch_) * V);
  filled_.assign(size_t(max_batch_), 0);
  buffer_bytes_ -= cache_bytes_;
}

Decoder::~Decoder() {
  for (void* p : owned_) backend_.release(p);
}

void* Decoder::buffer(size_t bytes) {
  void* p = backend_.alloc(bytes);
  owned_.push_back(p);
  buffer_bytes_ += bytes;
  return p;
}

void Decoder::reset() { std::fill(filled_.begin(), filled_.end(), 0); }

void Decoder::check_token(int32_t token) const {
  if (token < 0 || token >= config_.vocab_size)
    fail_input("decoder", "token id out of range", "0.." + std::to_string(config_.vocab_size - 1),
               std::to_string(token));
}

void Decoder::check_prefill(int slot, const int32_t* tokens, int n, int pos0) const {
  if (slot < 0 || slot >= max_batch_)
    fail_input("decoder", "sequence slot out of range", "0.." + std::to_string(max_batch_ - 1),
               std::to_string(slot));
  if (n < 1) fail_input("decoder", "prefill needs at least one token", ">= 1", std::to_string(n));
  if (pos0 < 0 || pos0 > filled_[slot])
    fail_input("decoder", "position skips positions never fed since the last reset",
               "0.." + std::to_string(filled_[slot]), std::to_string(pos0));
  if (int64_t(pos0) + n > max_len_)
    fail_input("decoder", "the sequence would exceed max_len", "<= " + std::to_string(max_len_),
               std::to_string(int64_t(pos0) + n));
  for (int i = 0; i < n; ++i) check_token(tokens[i]);
}

const float* Decoder::prefill(int slot, const int32_t* tokens, int n, int pos0) {
  check_prefill(slot, tokens, n, pos0);
  const float* logits = nullptr;
  for (int done = 0; done < n; done += chunk_) {
    const int T = std::min(chunk_, n - done);
    const int32_t p = pos0 + done;
    logits = run(tokens + done, &p, 1, T, slot);
    filled_[slot] = p + T;
  }
  return logits;
}

std::vector<float> Decoder::prefill_all(int slot, const int32_t* tokens, int n, int pos0) {
  check_prefill(slot, tokens, n, pos0);
  const int64_t V = config_.vocab_size;
  if (all_logits_ == nullptr) {
    all_logits_ = static_cast<float*>(buffer(size_t(chunk_) * V * sizeof(float)));
  }
  std::vector<float> out(size_t(n) * V);
  for (int done = 0; done < n; done += chunk_) {
    const int T = std::min(chunk_, n - done);
    const int32_t p = pos0 + done;
    run(tokens + done, &p, 1, T, slot, true);
    filled_[slot] = p + T;
    backend_.download(out.data() + size_t(done) * V, all_logits_, size_t(T) * V * sizeof(float));
  }
  return out;
}

const float* Decoder::decode(const int32_t* tokens, const int32_t* positions, int B) {
  if (B < 1 || B > max_batch_)
    fail_input("decoder", "batch out of range", "1.." + std::to_string(max_batch_),
               std::to_string(B));
  for (int b = 0; b < B; ++b) {
    check_token(tokens[b]);
    if (positions[b] < 0 || positions[b] >= max_len_)
      fail_input("decoder", "position out of range (the sequence is limited to max_len)",
                 "0.." + std::to_string(max_len_ - 1), std::to_string(positions[b]));
    if (positions[b] > filled_[b])
      fail_input("decoder", "position skips positions never fed since the last reset",
                 "<= " + std::to_string(filled_[b]), std::to_string(positions[b]));
  }
  const float* logits = run(tokens, positions, B, 1, 0);
  for (int b = 0; b < B; ++b) filled_[b] = positions[b] + 1;
  return logits;
}

const float* Decoder::run(const int32_t* tokens, const int32_t* pos, int B, int T, int slot0,
                          bool all_rows) {
  const int64_t N = int64_t(B) * T;
  const int C = config_.dim, H = config_.n_heads, Hkv = config_.n_kv_heads, D = config_.head_dim;
  const int V = config_.vocab_size;
  const int64_t slot_stride = int64_t(max_len_) * Hkv * D;
  backend_.upload(tokens_, tokens, N * sizeof(int32_t));
  backend_.upload(pos_, pos, B * sizeof(int32_t));
  backend_.embedding_forward(x_, tokens_, weights_.params + layout_.embedding(), N, C);
  for (int l = 0; l < config_.n_layers; ++l) {
    const LayerWeights lw = layer_weights(config_, layout_, weights_, dt_, l);
    qkv_block_forward(backend_, config_, dt_, lw, x_, N, xn_, rstd_, qkv_pre_, qk_rstd_, qkv_);
    backend_.rope_forward_at(qkv_, B, T, H, Hkv, D, config_.rope(), pos_, max_len_);
    backend_.attention_decode(att_, k_cache_[l] + slot0 * slot_stride,
                              v_cache_[l] + slot0 * slot_stride, qkv_, B, T, H, Hkv, D, pos_,
                              max_len_);
    attention_output(backend_, config_, dt_, lw, att_, att_c_, x_, x_, N);
    ffn_block_forward(backend_, config_, dt_, lw, x_, x_, N, xn_, rstd_, h13_, g_);
  }
  const Int8Matrix classifier_q =
      weights_.int8 != nullptr ? weights_.int8[4 * int64_t(config_.n_layers)] : Int8Matrix{};
  const void* classifier = compute_tensor(weights_, dt_, layout_.classifier());
  if (all_rows) {  // every token's logits (B == 1), left in backend memory
    backend_.rmsnorm_forward(xn_, dt_, rstd_, x_, weights_.params + layout_.final_norm(), N, C,
                             float(config_.norm_eps));
    linear_forward(backend_, dt_, all_logits_, xn_, classifier, classifier_q, N, V, C, false);
    return nullptr;
  }
  // The last token of each sequence: row T-1 when B == 1, every row when T == 1.
  const float* last = x_ + (T - 1) * int64_t(C);
  backend_.rmsnorm_forward(xf_, dt_, rstd_, last, weights_.params + layout_.final_norm(), B, C,
                           float(config_.norm_eps));
  linear_forward(backend_, dt_, logits_, xf_, classifier, classifier_q, B, V, C, false);
  backend_.download(logits_host_.data(), logits_, size_t(B) * V * sizeof(float));
  return logits_host_.data();
}

}  // namespace kiln
