// The LR schedule and the weight-decay segments, against values worked out by
// hand (never computed by the code under test).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/param_layout.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"

using namespace kiln;

// lr 1e-3, 4 warmup steps, 14 steps, floor 0.1 * lr.
// Warmup: lr * (step + 1) / 4 -> 2.5e-4, 5e-4, 7.5e-4, 1e-3 (it never starts at 0).
// Cosine over the 10 remaining steps, progress (step - 4) / 9:
//   step 4: progress 0 -> 1e-3; step 13 (the last): progress 1 -> 1e-4;
//   step 8: progress 4/9, cos(80 deg) = 0.17364817766693033
//           -> 1e-4 + 0.5 * 9e-4 * 1.17364817766693033 = 6.281416799501187e-4.
TEST(LrSchedule, WarmupThenCosineToTheFloor) {
  const LrSchedule s{1e-3, 4, 14, 0.1};
  const double tol = 1e-15;
  EXPECT_NEAR(s.at(0), 2.5e-4, tol);
  EXPECT_NEAR(s.at(1), 5.0e-4, tol);
  EXPECT_NEAR(s.at(2), 7.5e-4, tol);
  EXPECT_NEAR(s.at(3), 1.0e-3, tol);
  EXPECT_NEAR(s.at(4), 1.0e-3, tol);
  EXPECT_NEAR(s.at(8), 6.281416799501187e-4, tol);
  EXPECT_NEAR(s.at(13), 1.0e-4, tol);
  EXPECT_NEAR(s.at(40), 1.0e-4, tol) << "past the end it stays at the floor";
}

TEST(LrSchedule, NoWarmupAndFloorOneIsConstant) {
  const LrSchedule s{3e-4, 0, 100, 1.0};
  for (int64_t step : {0, 1, 50, 99, 150}) EXPECT_DOUBLE_EQ(s.at(step), 3e-4) << step;
}

// Two steps of decay only: step 0 at lr, step 1 at the floor.
TEST(LrSchedule, ShortestCosine) {
  const LrSchedule s{1e-2, 0, 2, 0.5};
  EXPECT_NEAR(s.at(0), 1e-2, 1e-17);
  EXPECT_NEAR(s.at(1), 5e-3, 1e-17);
}

// A 2-layer model, dim 8, 2 heads of 4 (1 kv head), hidden 12, vocab 10, untied.
// Flat buffer (HF order): embed 80 | per layer: input norm 8, q 64, k 32, v 32,
// o 64, post norm 8, gate 96, up 96, down 96 | final norm 8 | lm_head 80.
// Decay on the matrices only, so adjacent matrices merge into one segment.
TEST(DecaySegments, MatricesDecayNormsDoNot) {
  const ModelConfig c = config_from_json({{"dim", 8},
                                          {"n_layers", 2},
                                          {"n_heads", 2},
                                          {"n_kv_heads", 1},
                                          {"hidden_dim", 12},
                                          {"vocab_size", 10},
                                          {"max_seq_len", 16},
                                          {"tie_embeddings", false}},
                                         "test");
  const ParamLayout layout(c);
  ASSERT_EQ(layout.total(), 1160);
  struct Want {
    int64_t offset, count;
    bool decay;
  };
  const std::vector<Want> want = {{0, 80, true},    {80, 8, false},   {88, 192, true},
                                  {280, 8, false},  {288, 288, true}, {576, 8, false},
                                  {584, 192, true}, {776, 8, false},  {784, 288, true},
                                  {1072, 8, false}, {1080, 80, true}};
  const std::vector<DecaySegment> got = decay_segments(layout);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].offset, want[i].offset) << i;
    EXPECT_EQ(got[i].count, want[i].count) << i;
    EXPECT_EQ(got[i].decay, want[i].decay) << i;
  }
  std::set<std::string> undecayed;
  for (const ParamInfo& p : layout.params())
    if (!p.decay) undecayed.insert(p.name);
  const std::set<std::string> norms = {
      "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
      "model.layers.1.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
      "model.norm.weight"};
  EXPECT_EQ(undecayed, norms);
}

// Model FLOPs per trained token (3 x forward; a multiply-add is 2 FLOPs; causal
// attention counts QK^T and PV over T/2 keys on average), counted by hand:
// Stories110M (C 768, 12 layers, 12 heads of 64, F 2048, V 32000), T = 256:
//   per layer MACs: qkv 768*2304 = 1769472, o 768*768 = 589824,
//   ffn 3*768*2048 = 4718592, attention 2*768*128 = 196608 -> 7274496;
//   12 layers 87293952 + classifier 768*32000 = 24576000 -> 111869952 MACs;
//   6 * 111869952 = 671219712.
// Qwen2.5-0.5B shape (C 896, 24 layers, 14 heads / 2 kv heads of 64, F 4864,
// V 151936), T = 512: qkv 896*(896+128+128) = 1032192, o 896*896 = 802816,
//   ffn 3*896*4864 = 13074432, attention 2*896*256 = 458752 -> 15368192;
//   24 layers 368836608 + classifier 896*151936 = 136134656 -> 504971264 MACs;
//   6 * 504971264 = 3029827584.
TEST(FlopCount, MatchesAHandCountForTwoShapes) {
  ModelConfig c;
  ASSERT_TRUE(find_preset("stories110M", &c));
  EXPECT_DOUBLE_EQ(c.train_flops_per_token(256), 671219712.0);
  ASSERT_TRUE(find_preset("qwen2.5-0.5b", &c));
  EXPECT_DOUBLE_EQ(c.train_flops_per_token(512), 3029827584.0);
}
