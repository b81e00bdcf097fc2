#include "io/llama2c_model.h"

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/file_util.h"
#include "io/model_safetensors.h"

namespace kiln {

static_assert(std::endian::native == std::endian::little,
              "llama2.c files are little-endian and read with memcpy");

namespace {

constexpr uint32_t kMagic = 0x616b3432;  // "ak42"
constexpr uint64_t kLegacyHeaderBytes = 7 * 4;
constexpr uint64_t kVersionedHeaderBytes = 256;

// What a llama2.c header says, before anything is trusted.
struct Header {
  int version = 0;
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, seq_len = 0;
  int64_t vocab_size = 0;  // absolute value (v0 stores the shared flag as the sign)
  bool shared_classifier = true;
  int32_t group_size = 0;  // v2 only
  uint64_t header_bytes = 0;
};

// One tensor of the file, in file order. `name` is the Kiln/HF parameter it
// fills (empty for v0's RoPE tables, which Kiln recomputes and skips on import).
enum class Rope { none, q, k };
enum class Table { none, freq_cos, freq_sin };
struct Slot {
  std::string name;
  int64_t rows = 0, cols = 0;
  Rope rope = Rope::none;
  Table table = Table::none;
  bool quantized = false;  // v2 matrices
  int64_t numel() const { return rows * cols; }
};

std::string s(int64_t v) { return std::to_string(v); }

Header read_header(InputFile& file) {
  Header h;
  const std::string& path = file.path();
  if (file.size() < kLegacyHeaderBytes)
    fail_input(path, "file is too short for a llama2.c header", "at least 28 bytes",
               s(int64_t(file.size())) + " bytes");
  uint32_t magic = 0;
  file.read_at(0, &magic, 4);
  int32_t fields[7];
  if (magic == kMagic) {
    if (file.size() < kVersionedHeaderBytes)
      fail_input(path, "file is too short for a llama2.c v1/v2 header", "at least 256 bytes",
                 s(int64_t(file.size())) + " bytes");
    int32_t version = 0;
    file.read_at(4, &version, 4);
    if (version != 1 && version != 2)
      fail_input(path, "unsupported llama2.c model version", "1 or 2", s(version));
    h.version = version;
    file.read_at(8, fields, sizeof(fields));
    uint8_t shared = 0;
    file.read_at(36, &shared, 1);
    if (shared > 1) fail_input(path, "shared_classifier flag is not 0 or 1", "0 or 1", s(shared));
    h.shared_classifier = shared == 1;
    if (version == 2) file.read_at(37, &h.group_size, 4);
    h.header_bytes = kVersionedHeaderBytes;
    if (fields[5] <= 0)
      fail_input(path, "vocab_size must be positive in a v1/v2 header", "> 0", s(fields[5]));
    h.vocab_size = fields[5];
  } else {
    h.version = 0;
    file.read_at(0, fields, sizeof(fields));
    h.header_bytes = kLegacyHeaderBytes;
    // Legacy flag: a negative vocab_size means a separate classifier at the end.
    h.shared_classifier = fields[5] > 0;
    h.vocab_size = std::llabs(int64_t(fields[5]));
  }
  h.dim = fields[0];
  h.hidden_dim = fields[1];
  h.n_layers = fields[2];
  h.n_heads = fields[3];
  h.n_kv_heads = fields[4];
  h.seq_len = fields[6];
  return h;
}

// Checks what ModelConfig::validate cannot (llama2.c derives head_dim from dim)
// and builds the config.
ModelConfig config_from_header(const Header& h, const std::string& path) {
  const struct {
    const char* name;
    int64_t value;
  } positive[] = {
      {"dim", h.dim},         {"hidden_dim", h.hidden_dim}, {"n_layers", h.n_layers},
      {"n_heads", h.n_heads}, {"n_kv_heads", h.n_kv_heads}, {"vocab_size", h.vocab_size},
      {"seq_len", h.seq_len}};
  for (const auto& f : positive)
    if (f.value <= 0)
      fail_input(path, std::string("llama2.c header field ") + f.name + " must be positive", "> 0",
                 s(f.value));
  if (h.dim % h.n_heads != 0)
    fail_input(path, "llama2.c header: dim must be divisible by n_heads (" + s(h.n_heads) + ")",
               "a multiple of " + s(h.n_heads), s(h.dim));
  if (h.n_heads % h.n_kv_heads != 0)
    fail_input(path, "llama2.c header: n_kv_heads must divide n_heads (" + s(h.n_heads) + ")",
               "a divisor of " + s(h.n_heads), s(h.n_kv_heads));
  if (h.version == 2 && h.group_size <= 0)
    fail_input(path, "llama2.c v2 header: group_size must be positive", "> 0", s(h.group_size));
  ModelConfig c;
  c.dim = h.dim;
  c.hidden_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.vocab_size = int(h.vocab_size);
  c.max_seq_len = h.seq_len;
  c.norm_eps = 1e-5;  // llama2.c hard-codes these two
  c.rope_theta = 10000.0;
  c.tie_embeddings = h.shared_classifier;
  c.name = path;
  c.validate(path);  // also bounds every size, so the layout below stays small
  return c;
}

// The file's tensors in file order for a given version (see the header comment).
std::vector<Slot> file_slots(const ModelConfig& c, int version) {
  const int64_t C = c.dim, F = c.hidden_dim, V = c.vocab_size, L = c.n_layers;
  const int64_t qd = c.q_dim(), kvd = c.kv_dim();
  auto layer = [](int64_t l, const char* rest) {
    return "model.layers." + std::to_string(l) + "." + rest;
  };
  std::vector<Slot> slots;
  auto per_layer = [&](const char* rest, int64_t rows, int64_t cols, Rope rope, bool quantized) {
    for (int64_t l = 0; l < L; ++l)
      slots.push_back({layer(l, rest), rows, cols, rope, Table::none, quantized});
  };
  const bool q8 = version == 2;
  const Slot embedding{"model.embed_tokens.weight", V, C, Rope::none, Table::none, q8};
  const Slot final_norm{"model.norm.weight", C, 1};
  auto matrices = [&] {
    per_layer("self_attn.q_proj.weight", qd, C, Rope::q, q8);
    per_layer("self_attn.k_proj.weight", kvd, C, Rope::k, q8);
    per_layer("self_attn.v_proj.weight", kvd, C, Rope::none, q8);
    per_layer("self_attn.o_proj.weight", C, qd, Rope::none, q8);
  };
  auto ffn = [&] {
    per_layer("mlp.gate_proj.weight", F, C, Rope::none, q8);  // w1
    per_layer("mlp.down_proj.weight", C, F, Rope::none, q8);  // w2
    per_layer("mlp.up_proj.weight", F, C, Rope::none, q8);    // w3
  };
  if (version == 0) {
    slots.push_back(embedding);
    per_layer("input_layernorm.weight", C, 1, Rope::none, false);
    matrices();
    per_layer("post_attention_layernorm.weight", C, 1, Rope::none, false);
    ffn();
    slots.push_back(final_norm);
    slots.push_back({"", c.max_seq_len, c.head_dim / 2, Rope::none, Table::freq_cos});
    slots.push_back({"", c.max_seq_len, c.head_dim / 2, Rope::none, Table::freq_sin});
  } else {
    per_layer("input_layernorm.weight", C, 1, Rope::none, false);
    per_layer("post_attention_layernorm.weight", C, 1, Rope::none, false);
    slots.push_back(final_norm);
    slots.push_back(embedding);
    matrices();
    ffn();
  }
  if (!c.tie_embeddings) slots.push_back({"lm_head.weight", V, C, Rope::none, Table::none, q8});
  return slots;
}

// Bytes the header promises, overflow-checked. InputError if a v2 tensor is
// not a whole number of groups (runq.c would read scales out of step).
uint64_t implied_file_size(const Header& h, const std::vector<Slot>& slots,
                           const std::string& path) {
  CheckedSize size(h.header_bytes);
  for (const Slot& slot : slots) {
    const uint64_t n = uint64_t(slot.rows) * uint64_t(slot.cols);  // both < 2^24 after validate
    if (!slot.quantized) {
      size.add_product(n, 4);
      continue;
    }
    if (n % uint64_t(h.group_size) != 0)
      fail_input(path, "tensor " + slot.name + " is not a whole number of quantisation groups",
                 "a multiple of group_size " + s(h.group_size), s(int64_t(n)) + " elements");
    size.add(n).add_product(n / uint64_t(h.group_size), 4);  // int8 values + fp32 scales
  }
  if (!size.ok())
    fail_input(path, "llama2.c header implies a file larger than 2^64 bytes", "sane dimensions",
               "overflow");
  return size.value();
}

const ParamInfo& param(const ParamLayout& layout, const std::string& name) {
  const ParamInfo* p = layout.find(name);
  if (!p) fail_runtime(name, "llama2.c mapping names a tensor the ParamLayout lacks");
  return *p;
}

int rope_heads(const ModelConfig& c, Rope rope) {
  return rope == Rope::q ? c.n_heads : c.n_kv_heads;
}

// Reads numel int8 values and their fp32 group scales; out = q * scale.
void read_q80(InputFile& file, float* out, int64_t numel, int group_size) {
  std::vector<int8_t> q(size_t(numel), 0);
  std::vector<float> scales(size_t(numel / group_size));
  file.read(q.data(), q.size());
  file.read(scales.data(), scales.size() * 4);
  for (int64_t i = 0; i < numel; ++i) out[i] = float(q[size_t(i)]) * scales[size_t(i / group_size)];
}

}  // namespace

void llama2c_rows_to_hf(const float* src, float* dst, int n_heads, int head_dim, int64_t cols) {
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    const int64_t base = int64_t(h) * head_dim;
    for (int j = 0; j < half; ++j) {
      std::memcpy(dst + (base + j) * cols, src + (base + 2 * j) * cols, size_t(cols) * 4);
      std::memcpy(dst + (base + half + j) * cols, src + (base + 2 * j + 1) * cols,
                  size_t(cols) * 4);
    }
  }
}

void hf_rows_to_llama2c(const float* src, float* dst, int n_heads, int head_dim, int64_t cols) {
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    const int64_t base = int64_t(h) * head_dim;
    for (int j = 0; j < half; ++j) {
      std::memcpy(dst + (base + 2 * j) * cols, src + (base + j) * cols, size_t(cols) * 4);
      std::memcpy(dst + (base + 2 * j + 1) * cols, src + (base + half + j) * cols,
                  size_t(cols) * 4);
    }
  }
}

bool is_llama2c_file(const std::string& path) {
  try {
    InputFile file(path);
    if (file.size() >= 4) {
      uint32_t magic = 0;
      file.read_at(0, &magic, 4);
      if (magic == kMagic) return true;
    }
    const Header h = read_header(file);
    const ModelConfig c = config_from_header(h, path);
    return implied_file_size(h, file_slots(c, h.version), path) == file.size();
  } catch (const InputError&) {
    return false;
  } catch (const RuntimeError&) {
    return false;
  }
}

ImportedModel load_llama2c(const std::string& path) {
  InputFile file(path);
  const Header h = read_header(file);
  ImportedModel model;
  model.format_version = h.version;
  model.config = config_from_header(h, path);
  const ModelConfig& c = model.config;
  const ParamLayout layout(c);
  const std::vector<Slot> slots = file_slots(c, h.version);

  // Trust no byte until the header and the file size agree exactly.
  const uint64_t expected = implied_file_size(h, slots, path);
  if (file.size() != expected)
    fail_input(path,
               std::string("file size does not match its llama2.c v") + std::to_string(h.version) +
                   " header (" + (file.size() < expected ? "truncated" : "trailing bytes") + ")",
               std::to_string(expected) + " bytes", std::to_string(file.size()) + " bytes");

  model.params.assign(size_t(layout.total()), 0.0f);
  std::vector<float> scratch;  // one projection in llama2.c row order
  file.seek(h.header_bytes);
  for (const Slot& slot : slots) {
    if (slot.table != Table::none) {  // v0 RoPE tables: Kiln recomputes them
      file.seek(file.tell() + uint64_t(slot.numel()) * 4);
      continue;
    }
    const ParamInfo& p = param(layout, slot.name);
    float* dst = model.params.data() + p.offset;
    float* target = dst;
    if (slot.rope != Rope::none) {
      scratch.resize(size_t(slot.numel()));
      target = scratch.data();
    }
    if (slot.quantized)
      read_q80(file, target, slot.numel(), h.group_size);
    else
      file.read(target, size_t(slot.numel()) * 4);
    if (slot.rope != Rope::none)
      llama2c_rows_to_hf(scratch.data(), dst, rope_heads(c, slot.rope), c.head_dim, slot.cols);
    check_finite(path, slot.name, dst, slot.numel());
  }
  return model;
}

namespace {

void check_exportable(const std::string& path, const ModelConfig& c) {
  c.validate(path);
  if (c.dim % c.n_heads != 0 || c.head_dim != c.dim / c.n_heads)
    fail_input(path, "llama2.c format requires head_dim == dim / n_heads",
               s(c.dim % c.n_heads == 0 ? c.dim / c.n_heads : 0), s(c.head_dim));
  if (c.rope_theta != 10000.0)
    fail_input(path, "llama2.c format hard-codes rope_theta", "10000",
               std::to_string(c.rope_theta));
  if (c.norm_eps != 1e-5)
    fail_input(path, "llama2.c format hard-codes norm_eps", "1e-05", std::to_string(c.norm_eps));
  if (c.qkv_bias || c.qk_norm || c.has_rope_scaling())
    fail_input(path, "llama2.c format has no q/k/v biases, q/k norms or rope_scaling",
               "a plain llama model", "model_type " + c.model_type);
}

void save_llama2c(const std::string& path, const ModelConfig& c, const ParamLayout& layout,
                  const float* params, int version) {
  check_exportable(path, c);
  if (layout.total() != c.num_params())
    fail_runtime(path, "ParamLayout does not belong to this config");
  AtomicFile file(path);
  const int32_t vocab = c.tie_embeddings ? c.vocab_size : -c.vocab_size;
  if (version == 0) {
    const int32_t header[7] = {c.dim,        c.hidden_dim, c.n_layers,   c.n_heads,
                               c.n_kv_heads, vocab,        c.max_seq_len};
    file.write(header, sizeof(header));
  } else {
    char header[kVersionedHeaderBytes] = {};
    const int32_t fields[9] = {int32_t(kMagic), 1,         c.dim,        c.hidden_dim,
                               c.n_layers,      c.n_heads, c.n_kv_heads, c.vocab_size,
                               c.max_seq_len};
    std::memcpy(header, fields, sizeof(fields));
    header[36] = c.tie_embeddings ? 1 : 0;
    file.write(header, sizeof(header));
  }
  std::vector<float> scratch;
  for (const Slot& slot : file_slots(c, version)) {
    scratch.resize(size_t(slot.numel()));
    if (slot.table != Table::none) {
      // llama2.c's precompute_freqs_cis: angle(t, i) = t * theta^(-2i / D).
      // run.c skips these tables; they are written for format fidelity.
      for (int64_t t = 0; t < slot.rows; ++t)
        for (int64_t i = 0; i < slot.cols; ++i) {
          const double angle = double(t) * std::pow(c.rope_theta, -2.0 * double(i) / c.head_dim);
          scratch[size_t(t * slot.cols + i)] =
              float(slot.table == Table::freq_cos ? std::cos(angle) : std::sin(angle));
        }
      file.write(scratch.data(), scratch.size() * 4);
      continue;
    }
    const float* src = params + param(layout, slot.name).offset;
    if (slot.rope != Rope::none) {
      hf_rows_to_llama2c(src, scratch.data(), rope_heads(c, slot.rope), c.head_dim, slot.cols);
      src = scratch.data();
    }
    file.write(src, size_t(slot.numel()) * 4);
  }
  file.commit();
}

}  // namespace

void save_llama2c_v0(const std::string& path, const ModelConfig& config, const ParamLayout& layout,
                     const float* params) {
  save_llama2c(path, config, layout, params, 0);
}

void save_llama2c_v1(const std::string& path, const ModelConfig& config, const ParamLayout& layout,
                     const float* params) {
  save_llama2c(path, config, layout, params, 1);
}

}  // namespace kiln
