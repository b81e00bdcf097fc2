#include <gtest/gtest.h>

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
  nlohmann::json j = {{"dim", 64}, {"n_layers", 2}, {"n_heads", 8}, {"n_kv_heads", 3},
                      {"hidden_dim", 100}, {"vocab_size", 50}, {"max_seq_len", 16}};
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
      {R"({"dim": 64, "n_layers": 2, "n_heads": 8, "n_kv_heads": 3, "hidden_dim": 100, "vocab_size": 50, "max_seq_len": 16})", "n_kv_heads"},
      {R"({"dim": 64, "n_layers": 0, "n_heads": 8, "hidden_dim": 100, "vocab_size": 50, "max_seq_len": 16})", "n_layers"},
      {R"({"dim": 64, "n_layers": 2, "n_heads": 8, "hidden_dim": 100, "vocab_size": -5, "max_seq_len": 16})", "vocab_size"},
      {R"({"dim": 64, "n_layers": 2, "n_heads": 8, "hidden_dim": 100, "vocab_size": 50, "max_seq_len": 16, "norm_eps": -1})", "norm_eps"},
      {R"({"dim": 60, "n_layers": 2, "n_heads": 8, "hidden_dim": 100, "vocab_size": 50, "max_seq_len": 16})", "dim"},
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
