#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"
#include "model/param_layout.h"
#include "run_kiln.h"

using namespace kiln;

TEST(Config, PresetsHaveTheDocumentedShapes) {
  ModelConfig c;
  ASSERT_TRUE(find_preset("stories110M", &c));
  EXPECT_EQ(c.dim, 768);
  EXPECT_EQ(c.n_layers, 12);
  EXPECT_EQ(c.hidden_dim, 2048);
  EXPECT_EQ(c.vocab_size, 32000);
  ASSERT_TRUE(find_preset("stories260K", &c));
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  for (const auto& name : preset_names()) {
    ASSERT_TRUE(find_preset(name, &c));
    EXPECT_NO_THROW(c.validate(name));
  }
}

TEST(Config, InvalidFieldIsNamed) {
  nlohmann::json j = {{"dim", 64},        {"n_layers", 2},     {"n_heads", 8},
                      {"n_kv_heads", 3},  {"hidden_dim", 100}, {"vocab_size", 50},
                      {"max_seq_len", 16}};
  try {
    config_from_json(j, "cfg.json");
    FAIL() << "accepted n_kv_heads that does not divide n_heads";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("n_kv_heads"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
  }
  j["n_kv_heads"] = 4;
  j["dim"] = -1;
  EXPECT_THROW(config_from_json(j, "cfg.json"), InputError);
}

TEST(Config, HuggingFaceJsonRoundTrip) {
  ModelConfig c;
  ASSERT_TRUE(find_preset("qwen2.5-0.5b", &c));
  ModelConfig back = config_from_json(config_to_hf_json(c), "hf");
  EXPECT_EQ(back.dim, c.dim);
  EXPECT_EQ(back.n_kv_heads, c.n_kv_heads);
  EXPECT_EQ(back.head_dim, c.head_dim);
  EXPECT_EQ(back.tie_embeddings, c.tie_embeddings);
  EXPECT_DOUBLE_EQ(back.rope_theta, c.rope_theta);
}

TEST(Config, QwenAndLlama3PresetsHaveTheirPublishedShapes) {
  ModelConfig c;
  ASSERT_TRUE(find_preset("qwen2.5-0.5b", &c));
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.head_dim, 64);
  // Qwen2.5-0.5B has 494,032,768 parameters (embedding counted once).
  EXPECT_EQ(c.num_params(), 494032768);
  ASSERT_TRUE(find_preset("qwen3-0.6b", &c));
  EXPECT_EQ(c.model_type, "qwen3");
  EXPECT_EQ(c.dim, 1024);
  EXPECT_EQ(c.n_layers, 28);
  EXPECT_EQ(c.n_heads, 16);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.hidden_dim, 3072);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.norm_eps, 1e-6);
  // Qwen3-0.6B: 596,049,920 parameters with the embedding counted once.
  EXPECT_EQ(c.num_params(), 596049920);
  ASSERT_TRUE(find_preset("llama-3.2-1b", &c));
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.dim, 2048);
  EXPECT_EQ(c.n_layers, 16);
  EXPECT_EQ(c.n_heads, 32);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.hidden_dim, 8192);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_embeddings);
  // Llama-3.2-1B: 1,235,814,400 parameters (tied).
  EXPECT_EQ(c.num_params(), 1235814400);
}

// The fields of the published config.json files, abridged.
const char* kQwen2Json = R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
  "hidden_size": 896, "intermediate_size": 4864, "num_attention_heads": 14,
  "num_hidden_layers": 24, "num_key_value_heads": 2, "max_position_embeddings": 32768,
  "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true,
  "vocab_size": 151936, "hidden_act": "silu", "use_sliding_window": false,
  "sliding_window": 32768, "max_window_layers": 21, "rope_scaling": null})";
const char* kQwen3Json = R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
  "attention_bias": false, "head_dim": 128, "hidden_size": 1024, "intermediate_size": 3072,
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "max_position_embeddings": 40960, "rms_norm_eps": 1e-06, "rope_theta": 1000000,
  "tie_word_embeddings": true, "vocab_size": 151936, "hidden_act": "silu",
  "use_sliding_window": false, "sliding_window": null, "rope_scaling": null})";
const char* kLlama32Json = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "attention_bias": false, "mlp_bias": false, "head_dim": 64, "hidden_size": 2048,
  "intermediate_size": 8192, "num_attention_heads": 32, "num_hidden_layers": 16,
  "num_key_value_heads": 8, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
  "rope_theta": 500000.0, "tie_word_embeddings": true, "vocab_size": 128256,
  "hidden_act": "silu", "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0,
  "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"}})";

TEST(Config, ReadsHuggingFaceQwenAndLlamaConfigs) {
  ModelConfig q2 = config_from_json(nlohmann::json::parse(kQwen2Json), "qwen2");
  EXPECT_EQ(q2.model_type, "qwen2");
  EXPECT_TRUE(q2.qkv_bias);  // Qwen2 always has q/k/v biases (no attention_bias field)
  EXPECT_FALSE(q2.qk_norm);
  EXPECT_EQ(q2.head_dim, 64);
  EXPECT_EQ(q2.n_kv_heads, 2);
  EXPECT_TRUE(q2.tie_embeddings);
  EXPECT_EQ(q2.norm_eps, 1e-6);
  ModelConfig q3 = config_from_json(nlohmann::json::parse(kQwen3Json), "qwen3");
  EXPECT_EQ(q3.model_type, "qwen3");
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_FALSE(q3.qkv_bias);
  EXPECT_EQ(q3.head_dim, 128);
  EXPECT_EQ(q3.q_dim(), 2048);
  EXPECT_EQ(q3.rope_theta, 1e6);
  ModelConfig l = config_from_json(nlohmann::json::parse(kLlama32Json), "llama");
  EXPECT_EQ(l.model_type, "llama");
  EXPECT_FALSE(l.qkv_bias);
  EXPECT_EQ(l.rope_scaling.factor, 32.0);
  EXPECT_EQ(l.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(l.rope_theta, 500000.0);
  nlohmann::json biased = nlohmann::json::parse(kLlama32Json);
  biased["attention_bias"] = true;
  EXPECT_TRUE(config_from_json(biased, "llama").qkv_bias);
}

TEST(Config, HuggingFaceExportKeepsTheArchitecture) {
  for (const char* text : {kQwen2Json, kQwen3Json, kLlama32Json}) {
    const ModelConfig c = config_from_json(nlohmann::json::parse(text), "in");
    const nlohmann::json out = config_to_hf_json(c);
    const nlohmann::json in = nlohmann::json::parse(text);
    EXPECT_EQ(out["model_type"], in["model_type"]);
    EXPECT_EQ(out["architectures"], in["architectures"]);
    for (const char* key :
         {"hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
          "intermediate_size", "vocab_size", "tie_word_embeddings", "rms_norm_eps", "rope_theta"})
      EXPECT_EQ(out[key], in[key]) << key;
    if (in.contains("head_dim")) {
      EXPECT_EQ(out["head_dim"], in["head_dim"]);
    }
    if (in.contains("attention_bias")) {
      EXPECT_EQ(out["attention_bias"], in["attention_bias"]);
    }
    EXPECT_EQ(out["rope_scaling"], in["rope_scaling"]);
    EXPECT_EQ(out.value("use_sliding_window", false), false);
    const ModelConfig back = config_from_json(out, "back");
    EXPECT_EQ(back.qkv_bias, c.qkv_bias);
    EXPECT_EQ(back.qk_norm, c.qk_norm);
    EXPECT_EQ(back.model_type, c.model_type);
    EXPECT_EQ(config_to_json(config_from_json(config_to_json(back), "kiln")), config_to_json(back));
  }
}

TEST(Config, UnimplementedHuggingFaceFieldsAreNamed) {
  struct Case {
    const char* base;
    const char* patch;  // JSON object merged into base
    const char* field;
  };
  const std::vector<Case> cases = {
      {kQwen2Json, R"({"use_sliding_window": true})", "use_sliding_window"},
      {kQwen2Json, R"({"num_experts": 60, "num_experts_per_tok": 4})", "num_experts"},
      {kQwen2Json, R"({"hidden_act": "gelu"})", "hidden_act"},
      {kLlama32Json, R"({"mlp_bias": true})", "mlp_bias"},
      {kLlama32Json, R"({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}})", "rope_scaling"},
      {kLlama32Json, R"({"rope_scaling": {"rope_type": null, "type": "linear", "factor": 2.0}})",
       "rope_scaling"},
      {kLlama32Json,
       R"({"model_type": "mistral", "attention_bias": false, "sliding_window": 4096})",
       "sliding_window"},
      {kLlama32Json, R"({"model_type": "gemma"})", "model_type"},
      {kLlama32Json, R"({"num_local_experts": 8})", "num_local_experts"},
  };
  for (const Case& c : cases) {
    nlohmann::json j = nlohmann::json::parse(c.base);
    j.merge_patch(nlohmann::json::parse(c.patch));
    try {
      config_from_json(j, "config.json");
      ADD_FAILURE() << "accepted " << c.patch;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(c.field), std::string::npos) << e.what();
    }
  }
  // A mistral window at least as long as the positions is plain causal attention.
  nlohmann::json j = nlohmann::json::parse(kLlama32Json);
  j.merge_patch({{"model_type", "mistral"}, {"sliding_window", 131072}});
  EXPECT_EQ(config_from_json(j, "config.json").model_type, "mistral");
}

// Llama 3.2's rope_scaling (factor 32, low 1, high 4, original 8192; theta 5e5,
// D 64): pair i has f = 5e5^(-i/32) and wavelength w = 2 pi / f.
//   i = 0, 8: w = 6.28, 167 < 8192 / 4: kept.
//   i = 16: f = 1/sqrt(5e5) = sqrt(2)/1000, w = 1000 pi sqrt(2) = 4442.88 in
//           [2048, 8192]: s = (8192 / w - 1) / 3, f' = f ((1 - s) / 32 + s).
//   i = 20, 31: w = 22911, 2.08e6 > 8192: f / 32.
TEST(Config, Llama3RopeScalingFrequencies) {
  ModelConfig c;
  ASSERT_TRUE(find_preset("llama-3.2-1b", &c));
  const RopeParams rope = c.rope();
  const double f16 = std::sqrt(2.0) / 1000, w16 = 1000 * M_PI * std::sqrt(2.0);
  const double s16 = (8192 / w16 - 1) / 3;
  EXPECT_DOUBLE_EQ(rope.inv_freq(0, 64), 1.0);
  EXPECT_NEAR(rope.inv_freq(8, 64), 0.03760603093086393, 1e-15);
  EXPECT_NEAR(rope.inv_freq(16, 64), f16 * ((1 - s16) / 32 + s16), 1e-15);
  EXPECT_NEAR(rope.inv_freq(16, 64), 4.2955679655936815e-4, 1e-15);
  EXPECT_NEAR(rope.inv_freq(20, 64), 2.742481756762073e-4 / 32, 1e-17);
  EXPECT_NEAR(rope.inv_freq(31, 64), 3.013858152139171e-06 / 32, 1e-19);
  // Without scaling: theta^(-2i/D) exactly as before.
  EXPECT_EQ(RopeParams(500000.0).inv_freq(16, 64), std::pow(500000.0, -2.0 * 16 / 64));
}

TEST(ParamLayout, CountsMatchAndNamesAreHuggingFace) {
  ModelConfig c;
  ASSERT_TRUE(find_preset("stories15M", &c));
  ParamLayout layout(c);
  EXPECT_EQ(layout.total(), c.num_params());
  ASSERT_NE(layout.find("model.layers.5.mlp.down_proj.weight"), nullptr);
  EXPECT_EQ(layout.find("lm_head.weight"), nullptr);  // tied
  // q|k|v and gate|up are adjacent so one GEMM serves each group.
  const auto* q = layout.find("model.layers.2.self_attn.q_proj.weight");
  const auto* k = layout.find("model.layers.2.self_attn.k_proj.weight");
  ASSERT_TRUE(q && k);
  EXPECT_EQ(q->offset + q->numel(), k->offset);
  EXPECT_EQ(layout.layer(2).wqkv, q->offset);
  c.tie_embeddings = false;
  ParamLayout untied(c);
  EXPECT_NE(untied.find("lm_head.weight"), nullptr);
  EXPECT_EQ(untied.total(), c.num_params());
}

TEST(ParamLayout, InitIsSeededAndScaled) {
  ModelConfig c;
  ASSERT_TRUE(find_preset("stories260K", &c));
  ParamLayout layout(c);
  std::vector<float> a(layout.total()), b(layout.total()), other(layout.total());
  init_params(c, layout, 42, a.data());
  init_params(c, layout, 42, b.data());
  init_params(c, layout, 43, other.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other);
  auto stddev = [&](const char* name) {
    const ParamInfo* p = layout.find(name);
    double s = 0;
    for (int64_t i = 0; i < p->numel(); ++i) s += double(a[p->offset + i]) * a[p->offset + i];
    return std::sqrt(s / p->numel());
  };
  EXPECT_NEAR(stddev("model.embed_tokens.weight"), 0.02, 0.002);
  EXPECT_NEAR(stddev("model.layers.0.mlp.down_proj.weight"), 0.02 / std::sqrt(10.0), 0.001);
  EXPECT_EQ(a[layout.find("model.norm.weight")->offset], 1.0f);
}

// Through the CLI: an invalid config file is exit code 2 with the field named.
TEST(Config, CliRejectsInvalidConfigWithExitTwo) {
  const std::string dir = kiln::test::scratch_dir("config_cli");
  struct Case {
    std::string json, field;
  };
  const std::vector<Case> cases = {
      {R"({"dim": 64, "n_layers": 2, "n_heads": 8, "n_kv_heads": 3, "hidden_dim": 100, "vocab_size": 50, "max_seq_len": 16})",
       "n_kv_heads"},
      {R"({"dim": 64, "n_layers": 0, "n_heads": 8, "hidden_dim": 100, "vocab_size": 50, "max_seq_len": 16})",
       "n_layers"},
      {R"({"dim": 64, "n_layers": 2, "n_heads": 8, "hidden_dim": 100, "vocab_size": -5, "max_seq_len": 16})",
       "vocab_size"},
      {R"({"dim": 64, "n_layers": 2, "n_heads": 8, "hidden_dim": 100, "vocab_size": 50, "max_seq_len": 16, "norm_eps": -1})",
       "norm_eps"},
      {R"({"dim": 60, "n_layers": 2, "n_heads": 8, "hidden_dim": 100, "vocab_size": 50, "max_seq_len": 16})",
       "dim"},
      {R"({"dim": "wide"})", "dim"},
      {R"(not json)", "JSON"},
  };
  for (const auto& c : cases) {
    kiln::test::write_text_file(dir + "/bad.json", c.json);
    auto r = kiln::test::run_kiln({"bench", "--model", dir + "/bad.json", "--steps", "1"}, dir);
    EXPECT_EQ(r.code, 2) << c.json << "\n" << r.err;
    EXPECT_NE(r.err.find(c.field), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("bad.json"), std::string::npos) << r.err;
  }
}
