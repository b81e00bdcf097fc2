// safetensors, HF model weights and llama2.c .bin files: round trips, the
// llama2.c layouts built byte by byte from their description, the RoPE row
// permutation checked against both RoPE formulas, and every kind of damaged
// file rejected with an InputError that names the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "core/rng.h"
#include "io/file_util.h"
#include "io/llama2c_model.h"
#include "io/model_safetensors.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/param_layout.h"

#include "run_kiln.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {


template <typename T>
void append(std::string* out, const T& value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(T));
}
void append_floats(std::string* out, const std::vector<float>& v) {
  out->append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

std::vector<float> random_floats(size_t n, uint64_t seed) {
  Rng rng(seed, 7);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal();
  return v;
}

// Runs fn, requires an InputError whose message names `path` and contains `needle`.
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

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * 4) == 0; }

ModelConfig tiny_config(bool tied) {
  ModelConfig c;
  c.dim = 16;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;  // GQA ratio 2
  c.head_dim = 4;
  c.hidden_dim = 24;
  c.vocab_size = 11;
  c.max_seq_len = 8;
  c.tie_embeddings = tied;
  c.name = "tiny";
  c.validate("tiny");
  return c;
}

}  // namespace

// ============================================================================
// safetensors
// ============================================================================

TEST(Safetensors, RoundTripF32AndBF16) {
  const std::string path = test::case_dir("io_formats") + "/t.safetensors";
  const std::vector<float> a = random_floats(3 * 5, 1);
  const std::vector<float> b_src = random_floats(7, 2);
  std::vector<bf16> b(b_src.size());
  for (size_t i = 0; i < b.size(); ++i) b[i] = float_to_bf16(b_src[i]);
  const float scalar = 3.25f;
  const FileDigest d = write_safetensors(path,
                                         {{"a", DType::f32, {3, 5}, a.data()},
                                          {"empty", DType::f32, {0, 4}, nullptr},
                                          {"b", DType::bf16, {7}, b.data()},
                                          {"s", DType::f32, {}, &scalar}},
                                         {{"format", "pt"}, {"note", "kiln test"}});

  // The buffer must start 8-byte aligned and the file size must add up.
  const std::string raw = test::read_text_file(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, raw.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_EQ(raw.size(), 8 + header_len + 15 * 4 + 7 * 2 + 4);
  EXPECT_EQ(d.size, raw.size());
  EXPECT_EQ(d.xxh64, digest_file(path).xxh64);

  SafetensorsReader reader(path);
  EXPECT_EQ(reader.metadata().at("format"), "pt");
  EXPECT_EQ(reader.metadata().at("note"), "kiln test");
  ASSERT_EQ(reader.tensors().size(), 4u);
  ASSERT_NE(reader.find("a"), nullptr);
  EXPECT_EQ(reader.find("a")->dtype, "F32");
  EXPECT_EQ(reader.find("a")->shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(reader.find("b")->dtype, "BF16");
  EXPECT_EQ(reader.find("empty")->numel(), 0);
  EXPECT_EQ(reader.find("s")->shape.size(), 0u);

  const std::vector<float> a_back = reader.read_f32("a");
  EXPECT_TRUE(same_bits(a_back.data(), a.data(), a.size()));
  const std::vector<float> b_back = reader.read_f32("b");
  ASSERT_EQ(b_back.size(), b.size());
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b_back[i], bf16_to_float(b[i])) << i;
  EXPECT_EQ(reader.read_f32("s")[0], scalar);
  EXPECT_TRUE(reader.read_f32("empty").empty());

  expect_input_error([&] { reader.read_f32("nope"); }, path, "missing");
  std::vector<float> small(3);
  expect_input_error([&] { reader.read_f32("a", small.data(), 3); }, path, "number of elements");
}

// F16 widening checked on values whose bits are known: normal, negative,
// largest finite, smallest normal and smallest subnormal.
TEST(Safetensors, ReadsF16Exactly) {
  const std::string path = test::case_dir("io_formats") + "/h.safetensors";
  const uint16_t halves[] = {0x3C00, 0xC000, 0x7BFF, 0x0400, 0x0001, 0x0000};
  const float expected[] = {1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -14), std::ldexp(1.0f, -24),
                            0.0f};
  const std::string header = R"({"h":{"dtype":"F16","shape":[6],"data_offsets":[0,12]}})";
  std::string raw;
  append(&raw, uint64_t(header.size()));
  raw += header;
  raw.append(reinterpret_cast<const char*>(halves), sizeof(halves));
  test::write_text_file(path, raw);
  const std::vector<float> got = SafetensorsReader(path).read_f32("h");
  for (int i = 0; i < 6; ++i) EXPECT_EQ(got[i], expected[i]) << i;
}

namespace {

// A safetensors file from a header string and a data buffer of `data_bytes`
// zero bytes; header_len overrides the length field when given.
void write_raw_safetensors(const std::string& path, const std::string& header, size_t data_bytes,
                           std::optional<uint64_t> header_len = std::nullopt) {
  std::string raw;
  append(&raw, header_len.value_or(header.size()));
  raw += header;
  raw.append(data_bytes, '\0');
  test::write_text_file(path, raw);
}

}  // namespace

TEST(Safetensors, RejectsDamagedHeaders) {
  const std::string dir = test::case_dir("io_formats");
  struct Case {
    const char* label;
    std::string header;
    size_t data_bytes;
    std::optional<uint64_t> header_len;
    const char* needle;
  };
  const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<Case> cases = {
      {"header longer than file", "{" + ok_entry + "}", 8, 4096, "past the end"},
      {"header length near 2^64", "{" + ok_entry + "}", 8, ~uint64_t(0) - 3, "implausibly large"},
      {"bad json", "{\"a\": {\"dtype\": ", 8, std::nullopt, "not valid JSON"},
      {"not an object", "[1, 2]", 0, std::nullopt, "must be a JSON object"},
      {"unknown dtype", R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8,
       std::nullopt, "unknown dtype"},
      {"offset out of range", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4,
       std::nullopt, "past the end"},
      {"overlap",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12, std::nullopt, "overlaps"},
      {"gap",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
       20, std::nullopt, "gap"},
      {"trailing bytes", "{" + ok_entry + "}", 12, std::nullopt, "do not cover"},
      {"shape vs size", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8,
       std::nullopt, "does not match its dtype and shape"},
      {"dtype vs size", R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}})", 8,
       std::nullopt, "does not match its dtype and shape"},
      {"negative offset", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8,
       std::nullopt, "non-negative"},
      {"reversed offsets", R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8,
       std::nullopt, "reversed"},
      {"negative shape", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8,
       std::nullopt, "bad shape"},
      {"shape overflow",
       R"({"a":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,8]}})",
       8, std::nullopt, "too large"},
      {"missing offsets", R"({"a":{"dtype":"F32","shape":[2]}})", 8, std::nullopt, "data_offsets"},
      {"metadata not strings", R"({"__metadata__":{"k":1}})", 0, std::nullopt, "must be a string"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].label);
    const std::string path = dir + "/bad" + std::to_string(i) + ".safetensors";
    write_raw_safetensors(path, cases[i].header, cases[i].data_bytes, cases[i].header_len);
    expect_input_error([&] { SafetensorsReader reader(path); }, path, cases[i].needle);
  }
  // Shorter than the 8-byte length field.
  const std::string tiny = dir + "/tiny.safetensors";
  test::write_text_file(tiny, "abc");
  expect_input_error([&] { SafetensorsReader reader(tiny); }, tiny, "too short");
  // A missing file.
  expect_input_error([&] { SafetensorsReader reader(dir + "/none.safetensors"); },
                     dir + "/none.safetensors", "cannot open");
}

TEST(Safetensors, RejectsTruncatedFile) {
  const std::string path = test::case_dir("io_formats") + "/t.safetensors";
  const std::vector<float> a = random_floats(64, 3);
  write_safetensors(path, {{"a", DType::f32, {8, 8}, a.data()}});
  const std::string raw = test::read_text_file(path);
  for (size_t cut : {size_t(1), size_t(4), size_t(200), raw.size() - 9}) {
    test::write_text_file(path, raw.substr(0, raw.size() - cut));
    SCOPED_TRACE(cut);
    try {
      SafetensorsReader reader(path);
      ADD_FAILURE() << "truncated file accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(Safetensors, AtomicWriteLeavesNoTempFile) {
  const std::string dir = test::case_dir("io_formats");
  const std::vector<float> a = random_floats(4, 4);
  write_safetensors(dir + "/x.safetensors", {{"a", DType::f32, {4}, a.data()}});
  write_safetensors(dir + "/x.safetensors", {{"a", DType::f32, {2, 2}, a.data()}});  // replace
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    EXPECT_EQ(e.path().filename(), "x.safetensors");
  }
  EXPECT_EQ(files, 1);
  EXPECT_EQ(SafetensorsReader(dir + "/x.safetensors").find("a")->shape,
            (std::vector<int64_t>{2, 2}));
  // A failing write (duplicate names) leaves nothing behind either.
  EXPECT_THROW(write_safetensors(dir + "/y.safetensors", {{"a", DType::f32, {4}, a.data()},
                                                          {"a", DType::f32, {4}, a.data()}}),
               RuntimeError);
  EXPECT_FALSE(fs::exists(dir + "/y.safetensors"));
}

// ============================================================================
// Model weights as HF safetensors
// ============================================================================

TEST(ModelSafetensors, RoundTripTiedAndUntied) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const std::string dir = test::case_dir("io_formats") + (tied ? "/tied" : "/untied");
    const ModelConfig c = tiny_config(tied);
    const ParamLayout layout(c);
    std::vector<float> params(size_t(layout.total()));
    init_params(c, layout, 42, params.data());
    save_hf_model_dir(dir, c, layout, params.data());

    SafetensorsReader reader(dir + "/model.safetensors");
    EXPECT_EQ(reader.metadata().at("format"), "pt");  // transformers requires it
    EXPECT_EQ(reader.tensors().size(), layout.params().size());
    EXPECT_NE(reader.find("model.layers.1.self_attn.k_proj.weight"), nullptr);
    EXPECT_NE(reader.find("model.layers.0.mlp.up_proj.weight"), nullptr);
    EXPECT_EQ(reader.find("lm_head.weight") != nullptr, !tied);

    const ModelConfig back = load_config_file(dir + "/config.json");
    EXPECT_EQ(back.dim, c.dim);
    EXPECT_EQ(back.n_kv_heads, c.n_kv_heads);
    EXPECT_EQ(back.head_dim, c.head_dim);
    EXPECT_EQ(back.tie_embeddings, tied);

    std::vector<float> loaded(params.size(), -1.0f);
    load_model_safetensors(dir + "/model.safetensors", back, ParamLayout(back), loaded.data());
    EXPECT_TRUE(same_bits(loaded.data(), params.data(), params.size()));
  }
}

TEST(ModelSafetensors, RejectsMismatchedOrBadWeights) {
  const std::string dir = test::case_dir("io_formats");
  const ModelConfig c = tiny_config(true);
  const ParamLayout layout(c);
  std::vector<float> params(size_t(layout.total()));
  init_params(c, layout, 1, params.data());
  const std::string path = dir + "/model.safetensors";
  save_model_safetensors(path, c, layout, params.data());

  // Wrong FFN width: the error names the tensor and both shapes.
  ModelConfig wider = c;
  wider.hidden_dim = 32;
  const ParamLayout wider_layout(wider);
  std::vector<float> out(size_t(wider_layout.total()));
  expect_input_error([&] { load_model_safetensors(path, wider, wider_layout, out.data()); }, path,
                     "\"model.layers.0.mlp.gate_proj.weight\" has the wrong shape for the model "
                     "config (expected [32, 16], got [24, 16])");

  // An untied config wants lm_head.weight, which a tied file does not have.
  const ModelConfig untied = tiny_config(false);
  const ParamLayout untied_layout(untied);
  out.assign(size_t(untied_layout.total()), 0.0f);
  expect_input_error([&] { load_model_safetensors(path, untied, untied_layout, out.data()); }, path,
                     "\"lm_head.weight\" is missing");

  // A tied config refuses a file with a separate classifier.
  const std::string untied_path = dir + "/untied.safetensors";
  std::vector<float> untied_params(size_t(untied_layout.total()));
  init_params(untied, untied_layout, 2, untied_params.data());
  save_model_safetensors(untied_path, untied, untied_layout, untied_params.data());
  out.assign(size_t(layout.total()), 0.0f);
  expect_input_error([&] { load_model_safetensors(untied_path, c, layout, out.data()); },
                     untied_path, "unexpected tensor \"lm_head.weight\"");

  // NaN and Inf are named with the tensor.
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> broken = params;
    broken[size_t(layout.find("model.norm.weight")->offset + 3)] = bad;
    save_model_safetensors(path, c, layout, broken.data());
    expect_input_error([&] { load_model_safetensors(path, c, layout, out.data()); }, path,
                       "\"model.norm.weight\" holds a non-finite value at element 3");
  }
}

// ============================================================================
// llama2.c .bin
// ============================================================================

namespace {

// llama2.c-order weights for a test model, filled with random values, and the
// test's own mapping of them to HF names (written from the format description,
// independently of llama2c_model.cpp).
struct Llama2cWeights {
  int C, F, L, H, Hkv, D, V, seq;
  bool shared;
  std::vector<float> emb, final_norm, wcls;
  std::vector<std::vector<float>> att, ffn, wq, wk, wv, wo, w1, w2, w3;

  Llama2cWeights(const ModelConfig& c, uint64_t seed)
      : C(c.dim),
        F(c.hidden_dim),
        L(c.n_layers),
        H(c.n_heads),
        Hkv(c.n_kv_heads),
        D(c.head_dim),
        V(c.vocab_size),
        seq(c.max_seq_len),
        shared(c.tie_embeddings) {
    uint64_t s = seed;
    auto r = [&](size_t n) { return random_floats(n, s++); };
    emb = r(size_t(V) * C);
    final_norm = r(size_t(C));
    if (!shared) wcls = r(size_t(V) * C);
    for (int l = 0; l < L; ++l) {
      att.push_back(r(size_t(C)));
      ffn.push_back(r(size_t(C)));
      wq.push_back(r(size_t(H) * D * C));
      wk.push_back(r(size_t(Hkv) * D * C));
      wv.push_back(r(size_t(Hkv) * D * C));
      wo.push_back(r(size_t(C) * H * D));
      w1.push_back(r(size_t(F) * C));
      w2.push_back(r(size_t(C) * F));
      w3.push_back(r(size_t(F) * C));
    }
  }

  // The tensors in v1/v2 file order (v0 orders them differently, see below).
  std::vector<const std::vector<float>*> v1_order() const {
    std::vector<const std::vector<float>*> out;
    for (auto* group : {&att, &ffn})
      for (const auto& t : *group) out.push_back(&t);
    out.push_back(&final_norm);
    out.push_back(&emb);
    for (auto* group : {&wq, &wk, &wv, &wo, &w1, &w2, &w3})
      for (const auto& t : *group) out.push_back(&t);
    if (!shared) out.push_back(&wcls);
    return out;
  }

  // Expected Kiln params: HF names, Wq/Wk rows moved from interleaved RoPE pairs
  // to halves (HF row j <- row 2j, row D/2 + j <- row 2j + 1, per head).
  std::vector<float> expected_params(const ParamLayout& layout) const {
    std::vector<float> p(size_t(layout.total()), 0.0f);
    auto put = [&](const std::string& name, const std::vector<float>& src) {
      const ParamInfo* info = layout.find(name);
      ASSERT_NE(info, nullptr) << name;
      ASSERT_EQ(info->numel(), int64_t(src.size())) << name;
      std::copy(src.begin(), src.end(), p.begin() + info->offset);
    };
    auto unpermute = [&](const std::vector<float>& src, int heads) {
      std::vector<float> out(src.size());
      for (int h = 0; h < heads; ++h)
        for (int row = 0; row < D; ++row) {
          const int from = row < D / 2 ? 2 * row : 2 * (row - D / 2) + 1;
          std::copy_n(src.begin() + size_t(h * D + from) * C, C,
                      out.begin() + size_t(h * D + row) * C);
        }
      return out;
    };
    put("model.embed_tokens.weight", emb);
    put("model.norm.weight", final_norm);
    if (!shared) put("lm_head.weight", wcls);
    for (int l = 0; l < L; ++l) {
      const std::string pre = "model.layers." + std::to_string(l) + ".";
      put(pre + "input_layernorm.weight", att[l]);
      put(pre + "post_attention_layernorm.weight", ffn[l]);
      put(pre + "self_attn.q_proj.weight", unpermute(wq[l], H));
      put(pre + "self_attn.k_proj.weight", unpermute(wk[l], Hkv));
      put(pre + "self_attn.v_proj.weight", wv[l]);
      put(pre + "self_attn.o_proj.weight", wo[l]);
      put(pre + "mlp.gate_proj.weight", w1[l]);
      put(pre + "mlp.down_proj.weight", w2[l]);
      put(pre + "mlp.up_proj.weight", w3[l]);
    }
    return p;
  }

  // run.c's layout; freq tables hold t * 10000^(-2i/D) cos / sin.
  std::string v0_bytes() const {
    std::string raw;
    const int32_t header[7] = {C, F, L, H, Hkv, shared ? V : -V, seq};
    raw.append(reinterpret_cast<const char*>(header), sizeof(header));
    append_floats(&raw, emb);
    for (auto* group : {&att, &wq, &wk, &wv, &wo, &ffn, &w1, &w2, &w3})
      for (const auto& t : *group) append_floats(&raw, t);
    append_floats(&raw, final_norm);
    for (bool sine : {false, true}) {
      std::vector<float> table;
      for (int t = 0; t < seq; ++t)
        for (int i = 0; i < D / 2; ++i) {
          const double angle = t * std::pow(10000.0, -2.0 * i / D);
          table.push_back(float(sine ? std::sin(angle) : std::cos(angle)));
        }
      append_floats(&raw, table);
    }
    if (!shared) append_floats(&raw, wcls);
    return raw;
  }

  std::string versioned_header(int version, int32_t group_size) const {
    std::string raw;
    append(&raw, uint32_t(0x616b3432));
    append(&raw, int32_t(version));
    const int32_t fields[7] = {C, F, L, H, Hkv, V, seq};
    raw.append(reinterpret_cast<const char*>(fields), sizeof(fields));
    append(&raw, uint8_t(shared ? 1 : 0));
    if (version == 2) append(&raw, group_size);
    raw.resize(256, '\0');
    return raw;
  }

  std::string v1_bytes() const {
    std::string raw = versioned_header(1, 0);
    for (const auto* t : v1_order()) append_floats(&raw, *t);
    return raw;
  }
};

// Replaces every matrix of w with a Q8_0-representable one (int8 * group scale)
// and returns the v2 file bytes for it.
std::string make_v2(Llama2cWeights* w, int group_size, uint64_t seed) {
  std::string raw = w->versioned_header(2, group_size);
  for (auto* group : {&w->att, &w->ffn})
    for (const auto& t : *group) append_floats(&raw, t);
  append_floats(&raw, w->final_norm);
  std::vector<std::vector<float>*> matrices = {&w->emb};
  for (auto* group : {&w->wq, &w->wk, &w->wv, &w->wo, &w->w1, &w->w2, &w->w3})
    for (auto& t : *group) matrices.push_back(&t);
  if (!w->shared) matrices.push_back(&w->wcls);
  Rng rng(seed, 3);
  for (std::vector<float>* m : matrices) {
    std::vector<int8_t> q(m->size());
    std::vector<float> scales(m->size() / size_t(group_size));
    for (auto& s : scales) s = 0.001f + 0.01f * rng.uniform();
    for (size_t i = 0; i < q.size(); ++i) {
      q[i] = int8_t(int(rng.below(255)) - 127);
      (*m)[i] = float(q[i]) * scales[i / size_t(group_size)];
    }
    raw.append(reinterpret_cast<const char*>(q.data()), q.size());
    append_floats(&raw, scales);
  }
  return raw;
}

void expect_same_config(const ModelConfig& got, const ModelConfig& want) {
  EXPECT_EQ(got.dim, want.dim);
  EXPECT_EQ(got.hidden_dim, want.hidden_dim);
  EXPECT_EQ(got.n_layers, want.n_layers);
  EXPECT_EQ(got.n_heads, want.n_heads);
  EXPECT_EQ(got.n_kv_heads, want.n_kv_heads);
  EXPECT_EQ(got.head_dim, want.head_dim);
  EXPECT_EQ(got.vocab_size, want.vocab_size);
  EXPECT_EQ(got.max_seq_len, want.max_seq_len);
  EXPECT_EQ(got.tie_embeddings, want.tie_embeddings);
  EXPECT_EQ(got.rope_theta, 10000.0);
  EXPECT_EQ(got.norm_eps, 1e-5);
}

}  // namespace

// The permutation must make HF rotate-half RoPE on the imported rows produce
// exactly llama2.c's interleaved RoPE outputs (run.c's formula), reordered.
TEST(Llama2c, RopePermutationMatchesBothRopeConventions) {
  const int H = 3, D = 8, C = 5;
  const std::vector<float> w_l2c = random_floats(size_t(H) * D * C, 11);
  const std::vector<float> x = random_floats(C, 12);
  std::vector<float> w_hf(w_l2c.size()), w_back(w_l2c.size());
  llama2c_rows_to_hf(w_l2c.data(), w_hf.data(), H, D, C);
  hf_rows_to_llama2c(w_hf.data(), w_back.data(), H, D, C);
  EXPECT_TRUE(same_bits(w_back.data(), w_l2c.data(), w_l2c.size()));  // inverse pair

  auto matvec = [&](const std::vector<float>& w) {
    std::vector<double> y(size_t(H) * D, 0.0);
    for (int r = 0; r < H * D; ++r)
      for (int k = 0; k < C; ++k) y[r] += double(w[size_t(r) * C + k]) * x[k];
    return y;
  };
  for (int pos : {0, 1, 5, 37}) {
    std::vector<double> a = matvec(w_l2c), b = matvec(w_hf);
    // llama2.c run.c: pairs (i, i+1), freq = 10000^(-(i % D) / D).
    for (int i = 0; i < H * D; i += 2) {
      const double angle = pos * std::pow(10000.0, -double(i % D) / D);
      const double v0 = a[i], v1 = a[i + 1];
      a[i] = v0 * std::cos(angle) - v1 * std::sin(angle);
      a[i + 1] = v0 * std::sin(angle) + v1 * std::cos(angle);
    }
    // HF: q * cos + rotate_half(q) * sin with inv_freq[j] = 10000^(-2j / D).
    for (int h = 0; h < H; ++h)
      for (int j = 0; j < D / 2; ++j) {
        const double angle = pos * std::pow(10000.0, -2.0 * j / D);
        double& lo = b[h * D + j];
        double& hi = b[h * D + D / 2 + j];
        const double l0 = lo, h0 = hi;
        lo = l0 * std::cos(angle) - h0 * std::sin(angle);
        hi = h0 * std::cos(angle) + l0 * std::sin(angle);
      }
    for (int h = 0; h < H; ++h)
      for (int j = 0; j < D / 2; ++j) {
        EXPECT_NEAR(b[h * D + j], a[h * D + 2 * j], 1e-12) << pos;
        EXPECT_NEAR(b[h * D + D / 2 + j], a[h * D + 2 * j + 1], 1e-12) << pos;
      }
  }
}

TEST(Llama2c, V0ExportImportRoundTripIsExact) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const std::string path = test::case_dir("io_formats") + "/model.bin";
    const ModelConfig c = tiny_config(tied);
    const ParamLayout layout(c);
    std::vector<float> params(size_t(layout.total()));
    init_params(c, layout, 5, params.data());
    save_llama2c_v0(path, c, layout, params.data());

    // Size from the format description: header + weights + 2 RoPE tables.
    const int64_t freq = int64_t(c.max_seq_len) * c.head_dim / 2;
    EXPECT_EQ(int64_t(file_size(path)), 28 + 4 * (layout.total() + 2 * freq));
    int32_t header[7];
    std::memcpy(header, test::read_text_file(path).data(), sizeof(header));
    EXPECT_EQ(header[5], tied ? c.vocab_size : -c.vocab_size);
    EXPECT_TRUE(is_llama2c_file(path));

    const ImportedModel m = load_llama2c(path);
    EXPECT_EQ(m.format_version, 0);
    expect_same_config(m.config, c);
    ASSERT_EQ(m.params.size(), params.size());
    EXPECT_TRUE(same_bits(m.params.data(), params.data(), params.size()));

    // Export stores Wq in llama2.c's interleaved order (not a no-op permutation).
    const std::string raw = test::read_text_file(path);
    std::vector<float> wq0(size_t(c.q_dim()) * c.dim);
    const size_t wq_at = 28 + 4 * size_t(c.vocab_size * c.dim + c.n_layers * c.dim);
    std::memcpy(wq0.data(), raw.data() + wq_at, wq0.size() * 4);
    std::vector<float> expected(wq0.size());
    hf_rows_to_llama2c(
        params.data() + layout.find("model.layers.0.self_attn.q_proj.weight")->offset,
        expected.data(), c.n_heads, c.head_dim, c.dim);
    EXPECT_TRUE(same_bits(wq0.data(), expected.data(), wq0.size()));
    EXPECT_FALSE(same_bits(wq0.data(), params.data() + layout.layer(0).wqkv, wq0.size()));
  }
}

// A v0 file built byte by byte from run.c's layout imports into the expected
// HF params, and re-exporting it reproduces the same bytes.
TEST(Llama2c, HandBuiltV0ImportsAndReexportsIdentically) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const std::string dir = test::case_dir("io_formats");
    const ModelConfig c = tiny_config(tied);
    const Llama2cWeights w(c, 100);
    const std::string raw = w.v0_bytes();
    test::write_text_file(dir + "/in.bin", raw);
    const ImportedModel m = load_llama2c(dir + "/in.bin");
    expect_same_config(m.config, c);
    const ParamLayout layout(m.config);
    const std::vector<float> expected = w.expected_params(layout);
    EXPECT_TRUE(same_bits(m.params.data(), expected.data(), expected.size()));

    save_llama2c_v0(dir + "/out.bin", m.config, layout, m.params.data());
    const std::string again = test::read_text_file(dir + "/out.bin");
    ASSERT_EQ(again.size(), raw.size());
    // The RoPE tables are recomputed (run.c ignores them); compare them loosely, the rest exactly.
    const int64_t C = c.dim, L = c.n_layers, V = c.vocab_size;
    const size_t tables_at =
        28 + 4 * size_t(V * C + 2 * L * C + L * 2 * int64_t(c.q_dim()) * C +
                        L * 2 * int64_t(c.kv_dim()) * C + 3 * L * int64_t(c.hidden_dim) * C + C);
    const size_t tables_len = 4 * size_t(c.max_seq_len) * c.head_dim;
    EXPECT_EQ(again.substr(0, tables_at), raw.substr(0, tables_at));
    EXPECT_EQ(again.substr(tables_at + tables_len), raw.substr(tables_at + tables_len));
    for (size_t i = 0; i < tables_len / 4; ++i) {
      float a, b;
      std::memcpy(&a, again.data() + tables_at + 4 * i, 4);
      std::memcpy(&b, raw.data() + tables_at + 4 * i, 4);
      EXPECT_NEAR(a, b, 1e-6) << i;
    }
  }
}

TEST(Llama2c, HandBuiltV1Imports) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const std::string path = test::case_dir("io_formats") + "/v1.bin";
    const ModelConfig c = tiny_config(tied);
    const Llama2cWeights w(c, 200);
    test::write_text_file(path, w.v1_bytes());
    EXPECT_TRUE(is_llama2c_file(path));
    const ImportedModel m = load_llama2c(path);
    EXPECT_EQ(m.format_version, 1);
    expect_same_config(m.config, c);
    const std::vector<float> expected = w.expected_params(ParamLayout(m.config));
    EXPECT_TRUE(same_bits(m.params.data(), expected.data(), expected.size()));

    // Kiln's own v1 export writes the same bytes.
    const std::string out = test::case_dir("io_formats") + "/v1_out.bin";
    save_llama2c_v1(out, m.config, ParamLayout(m.config), m.params.data());
    EXPECT_EQ(test::read_text_file(out), w.v1_bytes());
  }
}

TEST(Llama2c, HandBuiltV2Dequantizes) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const std::string path = test::case_dir("io_formats") + "/v2.bin";
    const ModelConfig c = tiny_config(tied);
    Llama2cWeights w(c, 300);
    test::write_text_file(path, make_v2(&w, 8, 301));
    EXPECT_TRUE(is_llama2c_file(path));
    const ImportedModel m = load_llama2c(path);
    EXPECT_EQ(m.format_version, 2);
    expect_same_config(m.config, c);
    // The test and the reader both form the single fp32 product float(q) * scale,
    // so the dequantized values must agree bit for bit.
    const std::vector<float> expected = w.expected_params(ParamLayout(m.config));
    EXPECT_TRUE(same_bits(m.params.data(), expected.data(), expected.size()));
  }
}

TEST(Llama2c, RejectsTruncatedOversizedAndBadHeaders) {
  const std::string dir = test::case_dir("io_formats");
  const ModelConfig c = tiny_config(false);
  Llama2cWeights w(c, 400);
  Llama2cWeights wq(c, 500);
  const std::vector<std::pair<std::string, std::string>> files = {
      {"v0", w.v0_bytes()}, {"v1", w.v1_bytes()}, {"v2", make_v2(&wq, 8, 501)}};
  for (const auto& [label, raw] : files) {
    SCOPED_TRACE(label);
    const std::string path = dir + "/" + label + ".bin";
    test::write_text_file(path, raw.substr(0, raw.size() - 4));
    expect_input_error([&] { load_llama2c(path); }, path, "truncated");
    test::write_text_file(path, raw + std::string(4, '\0'));
    expect_input_error([&] { load_llama2c(path); }, path, "trailing bytes");
    test::write_text_file(path, raw.substr(0, 20));
    expect_input_error([&] { load_llama2c(path); }, path, "too short");
  }
  const std::string v0 = w.v0_bytes();
  auto with_field = [&](int index, int32_t value) {
    std::string raw = v0;
    std::memcpy(raw.data() + 4 * index, &value, 4);
    return raw;
  };
  const std::string path = dir + "/bad.bin";
  struct Case {
    int field;
    int32_t value;
    const char* needle;
  } cases[] = {{0, -16, "dim must be positive"},
               {3, 0, "n_heads must be positive"},
               {3, 3, "dim must be divisible by n_heads"},
               {4, 3, "n_kv_heads must divide n_heads"},
               {2, 2000000000, "n_layers"},  // caught by the config bounds
               {0, 1 << 30, "dim"},          // huge: rejected before any allocation
               {1, 1 << 24, "file size does not match"},
               {6, 0, "seq_len must be positive"}};
  for (const auto& k : cases) {
    SCOPED_TRACE(k.needle);
    test::write_text_file(path, with_field(k.field, k.value));
    EXPECT_FALSE(is_llama2c_file(path));
    expect_input_error([&] { load_llama2c(path); }, path, k.needle);
  }
  // A version this reader does not know, and a v2 file with group_size 0.
  std::string v3 = w.v1_bytes();
  v3[4] = 3;
  test::write_text_file(path, v3);
  expect_input_error([&] { load_llama2c(path); }, path, "unsupported llama2.c model version");
  std::string v2 = files[2].second;
  std::memset(v2.data() + 37, 0, 4);
  test::write_text_file(path, v2);
  expect_input_error([&] { load_llama2c(path); }, path, "group_size must be positive");
  // A non-finite weight is named.
  std::string nan_file = v0;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan_file.data() + 28 + 4 * 3, &nan, 4);  // embedding element 3
  test::write_text_file(path, nan_file);
  expect_input_error([&] { load_llama2c(path); }, path,
                     "\"model.embed_tokens.weight\" holds a non-finite value");
  // Not llama2.c at all.
  test::write_text_file(path, "this is a text file, not a model\n");
  EXPECT_FALSE(is_llama2c_file(path));
  EXPECT_FALSE(is_llama2c_file(dir + "/missing.bin"));
}

TEST(Llama2c, ExportRejectsWhatTheFormatCannotHold) {
  const std::string path = test::case_dir("io_formats") + "/x.bin";
  ModelConfig c = tiny_config(true);
  c.rope_theta = 1e6;
  const ParamLayout layout(c);
  std::vector<float> params(size_t(layout.total()), 0.5f);
  expect_input_error([&] { save_llama2c_v0(path, c, layout, params.data()); }, path, "rope_theta");
  c.rope_theta = 10000;
  c.head_dim = 8;  // q_dim 32 != dim 16
  const ParamLayout wide(c);
  params.assign(size_t(wide.total()), 0.5f);
  expect_input_error([&] { save_llama2c_v0(path, c, wide, params.data()); }, path, "head_dim");
  EXPECT_FALSE(fs::exists(path));
}

// llama2.c's published stories15M.bin is 60,816,028 bytes: 28 header bytes +
// 4 * (embedding 32000*288 + 6 layers * (2*288 norms + 4*288*288 attention
// + 3*288*768 FFN) + 288 final norm + 2 RoPE tables 256*24). A sparse file of
// that size with its header must import (zeros are valid weights), one byte
// more or less must not.
TEST(Llama2c, Stories15MHeaderMatchesThePublishedFileSize) {
  const std::string path = test::case_dir("io_formats") + "/stories15M.bin";
  const int32_t header[7] = {288, 768, 6, 6, 6, 32000, 256};
  for (int64_t delta : {0, -1, 1}) {
    SCOPED_TRACE(delta);
    test::write_text_file(path, std::string(reinterpret_cast<const char*>(header), sizeof(header)));
    fs::resize_file(path, uintmax_t(60816028 + delta));
    if (delta != 0) {
      EXPECT_FALSE(is_llama2c_file(path));
      expect_input_error([&] { load_llama2c(path); }, path, "file size does not match");
      continue;
    }
    EXPECT_TRUE(is_llama2c_file(path));
    const ImportedModel m = load_llama2c(path);
    ModelConfig preset;
    ASSERT_TRUE(find_preset("stories15M", &preset));
    expect_same_config(m.config, preset);
    EXPECT_EQ(int64_t(m.params.size()), preset.num_params());
  }
  fs::remove(path);
}
