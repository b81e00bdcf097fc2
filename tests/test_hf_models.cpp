// Hugging Face model directories as a model source (src/io/hf_model_dir.h): tiny
// Llama / Qwen2 / Qwen3 directories written here (the tensor names and shapes are
// spelled out by hand, not taken from ParamLayout), loaded through the CLI, trained,
// exported; a round trip through `kiln train --steps 0` is bit-exact; BF16 / F16 are
// widened exactly; each bad input exits 2 naming the file and the tensor and writes
// nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/rng.h"
#include "io/hf_model_dir.h"
#include "io/safetensors.h"
#include "run_kiln.h"

namespace fs = std::filesystem;
using namespace kiln;
using kiln::test::run_kiln;

namespace {

constexpr int kVocab = 32, kDim = 16, kHidden = 24, kLayers = 2;

struct Arch {
  std::string model_type;
  int heads, kv_heads, head_dim;
  bool tied, bias, qk_norm;
};
const Arch kLlama{"llama", 4, 2, 4, false, false, false};
const Arch kQwen2{"qwen2", 7, 1, 4, true, true, false};  // GQA 7:1 as 14:2
const Arch kQwen3{"qwen3", 4, 2, 6, true, false, true};  // 4 x 6 = 24 != 16

nlohmann::json hf_config(const Arch& a) {
  nlohmann::json j = {{"model_type", a.model_type},
                      {"hidden_size", kDim},
                      {"num_hidden_layers", kLayers},
                      {"num_attention_heads", a.heads},
                      {"num_key_value_heads", a.kv_heads},
                      {"head_dim", a.head_dim},
                      {"intermediate_size", kHidden},
                      {"vocab_size", kVocab},
                      {"max_position_embeddings", 64},
                      {"rms_norm_eps", 1e-6},
                      {"rope_theta", 1000000.0},
                      {"tie_word_embeddings", a.tied},
                      {"hidden_act", "silu"}};
  if (a.model_type == "llama")  // as Llama 3.2
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", 32.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}};
  if (a.model_type == "qwen2") {
    j["use_sliding_window"] = false;
    j["sliding_window"] = 64;
  } else {
    j["attention_bias"] = false;
  }
  return j;
}

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// The HF tensors of the architecture, in HF's own order, random values.
std::vector<Tensor> hf_tensors(const Arch& a, uint64_t seed) {
  const int64_t q = int64_t(a.heads) * a.head_dim, kv = int64_t(a.kv_heads) * a.head_dim;
  std::vector<Tensor> t;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    Rng rng(seed, t.size() + 1);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = 0.1f * rng.normal();
    t.push_back({name, shape, v});
  };
  add("model.embed_tokens.weight", {kVocab, kDim});
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {kDim});
    add(p + "self_attn.q_proj.weight", {q, kDim});
    add(p + "self_attn.k_proj.weight", {kv, kDim});
    add(p + "self_attn.v_proj.weight", {kv, kDim});
    if (a.bias) {
      add(p + "self_attn.q_proj.bias", {q});
      add(p + "self_attn.k_proj.bias", {kv});
      add(p + "self_attn.v_proj.bias", {kv});
    }
    if (a.qk_norm) {
      add(p + "self_attn.q_norm.weight", {a.head_dim});
      add(p + "self_attn.k_norm.weight", {a.head_dim});
    }
    add(p + "self_attn.o_proj.weight", {kDim, q});
    add(p + "post_attention_layernorm.weight", {kDim});
    add(p + "mlp.gate_proj.weight", {kHidden, kDim});
    add(p + "mlp.up_proj.weight", {kHidden, kDim});
    add(p + "mlp.down_proj.weight", {kDim, kHidden});
  }
  add("model.norm.weight", {kDim});
  if (!a.tied) add("lm_head.weight", {kVocab, kDim});
  return t;
}

std::vector<uint16_t> bf16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = float_to_bf16(v[i]).bits;
  return b;
}

// Writes dir/config.json and the tensors: one file, or `shards` files plus the index.
void write_hf_dir(const std::string& dir, const nlohmann::json& config,
                  const std::vector<Tensor>& tensors, int shards = 1, bool bf16 = false) {
  fs::create_directories(dir);
  kiln::test::write_text_file(dir + "/config.json", config.dump(2));
  std::vector<std::vector<uint16_t>> held;  // bf16 copies, alive until written
  held.reserve(tensors.size());             // no reallocation: the refs point into it
  std::vector<std::vector<SafetensorsTensorRef>> files(static_cast<size_t>(shards));
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    const size_t shard = i * size_t(shards) / tensors.size();
    const void* data = t.values.data();
    if (bf16) {
      held.push_back(bf16_bits(t.values));
      data = held.back().data();
    }
    files[shard].push_back({t.name, bf16 ? DType::bf16 : DType::f32, t.shape, data});
    weight_map[t.name] = "model-0000" + std::to_string(shard + 1) + "-of-0000" +
                         std::to_string(shards) + ".safetensors";
  }
  if (shards == 1) {
    write_safetensors(dir + "/model.safetensors", files[0], {{"format", "pt"}});
    return;
  }
  for (int s = 0; s < shards; ++s)
    write_safetensors(dir + "/model-0000" + std::to_string(s + 1) + "-of-0000" +
                          std::to_string(shards) + ".safetensors",
                      files[size_t(s)], {{"format", "pt"}});
  kiln::test::write_text_file(
      dir + "/model.safetensors.index.json",
      nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(2));
}

void write_tokens(const std::string& path, int64_t n) {
  std::vector<uint16_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    t[size_t(i)] = uint16_t((i * 7) % kVocab);  // next token = this one + 7: a bigram to learn
  kiln::test::write_text_file(path,
                              std::string(reinterpret_cast<const char*>(t.data()), t.size() * 2));
}

std::vector<std::string> train_args(const std::string& model, const std::string& data,
                                    const std::string& out, int steps) {
  return {"train", model,   "--data",  data,        "--batch",
          "2",     "--seq", "8",       "--steps",   std::to_string(steps),
          "--out", out,     "--quiet", "--threads", "2"};
}

class HfModels : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = kiln::test::scratch_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    write_tokens(dir + "/train.bin", 2000);
  }
  std::vector<std::string> train(const std::string& model, const std::string& out,
                                 int steps) const {
    std::vector<std::string> a = train_args(model, dir + "/train.bin", dir + "/" + out, steps);
    a.insert(a.begin() + 1, "--model");
    return a;
  }
  std::string dir;
};

}  // namespace

// HF dir -> kiln train --steps 0 -> checkpoint -> kiln export --format hf: every F32
// tensor comes back bit for bit, and config.json keeps the architecture.
TEST_F(HfModels, RoundTripThroughTrainStepsZeroIsBitExact) {
  for (const Arch& a : {kLlama, kQwen2, kQwen3}) {
    SCOPED_TRACE(a.model_type);
    const std::string src = dir + "/src-" + a.model_type;
    const std::vector<Tensor> tensors = hf_tensors(a, 7);
    write_hf_dir(src, hf_config(a), tensors, a.model_type == "qwen2" ? 2 : 1);
    auto r = run_kiln(train(src, "run-" + a.model_type, 0), dir);
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string exported = dir + "/exp-" + a.model_type;
    r = run_kiln(
        {"export", "--model", dir + "/run-" + a.model_type, "--format", "hf", "--out", exported},
        dir);
    ASSERT_EQ(r.code, 0) << r.err;
    SafetensorsReader back(exported + "/model.safetensors");
    EXPECT_EQ(back.tensors().size(), tensors.size());
    for (const Tensor& t : tensors) {
      const SafetensorsEntry* e = back.find(t.name);
      ASSERT_NE(e, nullptr) << t.name;
      EXPECT_EQ(e->dtype, "F32");
      EXPECT_EQ(e->shape, t.shape) << t.name;
      std::vector<float> got(t.values.size());
      back.read_raw(*e, got.data());
      EXPECT_EQ(std::memcmp(got.data(), t.values.data(), got.size() * 4), 0) << t.name;
    }
    const auto cfg = nlohmann::json::parse(kiln::test::read_text_file(exported + "/config.json"));
    const char* arch = a.model_type == "llama"   ? "LlamaForCausalLM"
                       : a.model_type == "qwen2" ? "Qwen2ForCausalLM"
                                                 : "Qwen3ForCausalLM";
    EXPECT_EQ(cfg["model_type"], a.model_type);
    EXPECT_EQ(cfg["architectures"], nlohmann::json::array({arch}));
    EXPECT_EQ(cfg["head_dim"], a.head_dim);
    EXPECT_EQ(cfg["tie_word_embeddings"], a.tied);
    EXPECT_EQ(cfg["attention_bias"], a.bias);
    EXPECT_EQ(cfg["rope_scaling"], hf_config(a)["rope_scaling"]);
  }
}

// The Qwen features train: 60 steps from the HF weights lower the loss on a
// learnable sequence.
TEST_F(HfModels, QwenDirectoriesTrain) {
  for (const Arch& a : {kQwen2, kQwen3}) {
    SCOPED_TRACE(a.model_type);
    const std::string src = dir + "/src-" + a.model_type;
    write_hf_dir(src, hf_config(a), hf_tensors(a, 3));
    std::vector<std::string> args = train(src, "run-" + a.model_type, 60);
    args.insert(args.end(), {"--lr", "1e-2"});
    auto r = run_kiln(args, dir);
    ASSERT_EQ(r.code, 0) << r.err;
    std::vector<double> losses;
    std::istringstream in(
        kiln::test::read_text_file(dir + "/run-" + a.model_type + "/metrics.jsonl"));
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.value("type", std::string()) == "step") losses.push_back(j["loss"]);
    }
    ASSERT_EQ(losses.size(), 60u);
    EXPECT_LT(losses.back(), losses.front() - 0.5) << "first " << losses.front();
  }
}

// BF16 (and F16) weights are widened exactly once at load.
TEST_F(HfModels, Bf16AndF16AreWidenedExactly) {
  const std::vector<Tensor> tensors = hf_tensors(kQwen3, 5);
  write_hf_dir(dir + "/bf16", hf_config(kQwen3), tensors, 2, true);
  const HfModel m = load_hf_model_dir(dir + "/bf16");
  // The first tensor is the embedding at offset 0 in any layout; check it and the total.
  const std::vector<uint16_t> bits = bf16_bits(tensors[0].values);
  for (size_t i = 0; i < bits.size(); ++i) {
    uint32_t u = uint32_t(bits[i]) << 16;
    float want;
    std::memcpy(&want, &u, 4);
    ASSERT_EQ(m.params[i], want) << i;
  }
  size_t total = 0;
  for (const Tensor& t : tensors) total += t.values.size();
  EXPECT_EQ(m.params.size(), total);
  // F16: rewrite one shard's dtype strings in place ("BF16" -> "F16" plus a space
  // outside the quotes, the same length). 0x3c00 is 1.0, 0xc000 is -2.0 in F16.
  const std::string shard = dir + "/bf16/model-00001-of-00002.safetensors";
  std::string bytes = kiln::test::read_text_file(shard);
  for (size_t at; (at = bytes.find("\"BF16\"")) != std::string::npos;)
    bytes.replace(at, 6, "\"F16\" ");
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const uint16_t one_minus_two[2] = {0x3c00, 0xc000};
  std::memcpy(&bytes[8 + header], one_minus_two, 4);  // first two embedding elements
  kiln::test::write_text_file(shard, bytes);
  const HfModel f16 = load_hf_model_dir(dir + "/bf16");
  EXPECT_EQ(f16.params[0], 1.0f);
  EXPECT_EQ(f16.params[1], -2.0f);
}

// Each bad directory: exit 2, the file and the tensor named, --out not created.
TEST_F(HfModels, BadDirectoriesExitTwoNamingFileAndTensor) {
  struct Bad {
    std::string what;
    std::function<void(const std::string&)> make;  // writes the bad directory
    std::vector<std::string> needles;
  };
  const std::vector<Tensor> good = hf_tensors(kQwen2, 9);
  auto write = [&](const std::string& d, std::vector<Tensor> t, int shards = 1) {
    write_hf_dir(d, hf_config(kQwen2), t, shards);
  };
  auto without = [&](const std::string& name) {
    std::vector<Tensor> t;
    for (const Tensor& x : good)
      if (x.name != name) t.push_back(x);
    return t;
  };
  const std::string bias1 = "model.layers.1.self_attn.k_proj.bias";
  const std::vector<Bad> cases = {
      {"missing tensor",
       [&](const std::string& d) { write(d, without(bias1)); },
       {"model.safetensors", bias1}},
      {"extra tensor",
       [&](const std::string& d) {
         std::vector<Tensor> t = good;
         t.push_back({"model.layers.0.mlp.gate_proj.bias", {kHidden}, std::vector<float>(kHidden)});
         write(d, t);
       },
       {"model.safetensors", "model.layers.0.mlp.gate_proj.bias"}},
      {"wrong shape",
       [&](const std::string& d) {
         std::vector<Tensor> t = good;
         for (Tensor& x : t)
           if (x.name == bias1) x.shape = {2, 2}, x.values.resize(4);
         write(d, t);
       },
       {"model.safetensors", bias1, "[2, 2]"}},
      {"NaN weight",
       [&](const std::string& d) {
         std::vector<Tensor> t = good;
         t[5].values[3] = std::nanf("");
         write(d, t);
       },
       {"model.safetensors", good[5].name}},
      {"unknown dtype",
       [&](const std::string& d) {
         write(d, good);
         std::string bytes = kiln::test::read_text_file(d + "/model.safetensors");
         const size_t at = bytes.find("\"F32\"", bytes.find("\"model.norm.weight\""));
         bytes.replace(at, 5, "\"I32\"");
         kiln::test::write_text_file(d + "/model.safetensors", bytes);
       },
       {"model.safetensors", "model.norm.weight", "I32"}},
      {"missing shard",
       [&](const std::string& d) {
         write(d, good, 2);
         fs::remove(d + "/model-00002-of-00002.safetensors");
       },
       {"model-00002-of-00002.safetensors", "model."}},
      {"tied model with a different lm_head",
       [&](const std::string& d) {
         std::vector<Tensor> t = good;
         t.push_back({"lm_head.weight", {kVocab, kDim}, std::vector<float>(kVocab * kDim, 0.5f)});
         write(d, t);
       },
       {"model.safetensors", "lm_head.weight"}},
      {"sliding window in use",
       [&](const std::string& d) {
         write(d, good);
         nlohmann::json c = hf_config(kQwen2);
         c["use_sliding_window"] = true;
         kiln::test::write_text_file(d + "/config.json", c.dump());
       },
       {"config.json", "use_sliding_window"}},
  };
  int i = 0;
  for (const Bad& bad : cases) {
    SCOPED_TRACE(bad.what);
    const std::string d = dir + "/bad" + std::to_string(i++);
    bad.make(d);
    auto r = run_kiln(train(d, "out", 1), dir);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("kiln: error:"), std::string::npos) << r.err;
    for (const std::string& needle : bad.needles)
      EXPECT_NE(r.err.find(needle), std::string::npos) << needle << " not in: " << r.err;
    EXPECT_FALSE(fs::exists(dir + "/out")) << "--out was created";
  }
}

// A tied model that carries lm_head.weight equal to its embedding loads.
TEST_F(HfModels, TiedModelMayCarryAnEqualLmHead) {
  std::vector<Tensor> t = hf_tensors(kQwen3, 2);
  t.push_back({"lm_head.weight", {kVocab, kDim}, t[0].values});
  write_hf_dir(dir + "/tied", hf_config(kQwen3), t);
  const HfModel m = load_hf_model_dir(dir + "/tied");
  EXPECT_TRUE(m.config.tie_embeddings);
  EXPECT_EQ(m.config.model_type, "qwen3");
}
