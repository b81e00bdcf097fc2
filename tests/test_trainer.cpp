// kiln train / export end to end through the CLI: the oracle check of a few
// sequential steps, exact resume, checkpoints and exports, bad input.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "io/checkpoint.h"
#include "io/llama2c_model.h"
#include "io/safetensors.h"
#include "model/param_layout.h"
#include "reference/model_fixture.h"
#include "reference/reference_ops.h"
#include "run_kiln.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"

using namespace kiln;
using kiln::test::run_kiln;
namespace fs = std::filesystem;

namespace {

constexpr int kVocab = 61;

// Learnable tokens: a noisy counter, so a small model's loss clearly falls.
std::vector<uint16_t> make_tokens(int64_t n, uint64_t seed) {
  Rng rng(seed, 3);
  std::vector<uint16_t> t(n);
  for (int64_t i = 0; i < n; ++i)
    t[i] = uint16_t(rng.uniform() < 0.1f ? rng.below(kVocab) : (i * 7) % kVocab);
  return t;
}

void write_tokens(const std::string& path, const std::vector<uint16_t>& tokens) {
  kiln::test::write_text_file(
      path, std::string(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 2));
}

class Trainer : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = kiln::test::scratch_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    train_tokens = make_tokens(6000, 1);
    write_tokens(dir + "/train.bin", train_tokens);
    write_tokens(dir + "/val.bin", make_tokens(1000, 2));
    config = {{"dim", 24},        {"n_layers", 2},        {"n_heads", 4},     {"n_kv_heads", 2},
              {"hidden_dim", 40}, {"vocab_size", kVocab}, {"max_seq_len", 32}};
    kiln::test::write_text_file(dir + "/tiny.json", config.dump());
  }
  std::vector<std::string> base_args(const std::string& out) const {
    return {"train",
            "--model",
            dir + "/tiny.json",
            "--data",
            dir + "/train.bin",
            "--batch",
            "2",
            "--seq",
            "16",
            "--out",
            dir + "/" + out,
            "--quiet",
            "--threads",
            "2"};
  }
  std::vector<nlohmann::json> metrics(const std::string& out) const {
    std::vector<nlohmann::json> records;
    std::istringstream in(kiln::test::read_text_file(dir + "/" + out + "/metrics.jsonl"));
    for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
    return records;
  }
  std::string dir;
  std::vector<uint16_t> train_tokens;
  nlohmann::json config;
};

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Starts `kiln args...` in the background with its stdout in stdout_path; returns its pid.
pid_t spawn_kiln(std::vector<std::string> args, const std::string& stdout_path) {
  args.insert(args.begin(), KILN_BINARY);
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* f = freopen(stdout_path.c_str(), "w", stdout);
    (void)f;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits (up to 30 s) until `metrics_path` logs `step`, sends `sig` to `pid` and
// returns the exit status the run ended with (-1 unless it exited normally).
int signal_after_step(pid_t pid, const std::string& metrics_path, int step, int sig) {
  const std::string needle = "\"step\":" + std::to_string(step) + ",";
  for (int i = 0; i < 3000; ++i) {
    if (kiln::test::read_text_file(metrics_path).find(needle) != std::string::npos) break;
    usleep(10000);
  }
  kill(pid, sig);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_F(Trainer, TrainsLogsAndCheckpoints) {
  auto r = run_kiln(
      base_args("run") + std::vector<std::string>{"--steps", "40", "--lr", "1e-2", "--val-data",
                                                  dir + "/val.bin", "--eval-every", "20",
                                                  "--ckpt-every", "20"},
      dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Efficiency Report"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokens/s"), std::string::npos);
  std::map<std::string, int> counts;
  double first_loss = 0, last_loss = 0;
  for (const auto& m : metrics("run")) {
    counts[m.at("type").get<std::string>()]++;
    ASSERT_TRUE(m.contains("time"));
    if (m["type"] == "step") {
      if (m["step"] == 1) first_loss = m["loss"];
      last_loss = m["loss"];
      for (const char* key : {"tokens", "lr", "grad_norm", "ms", "tok_s", "tflops"})
        EXPECT_TRUE(m.contains(key)) << key;
    }
    if (m["type"] == "report") {
      for (const char* key :
           {"wall_s", "compile_s", "train_s", "ms_per_step", "tok_s", "tflops", "mfu"})
        EXPECT_TRUE(m.contains(key)) << key;
    }
  }
  EXPECT_EQ(counts["run"], 1);
  EXPECT_EQ(counts["step"], 40);
  EXPECT_EQ(counts["eval"], 3);  // steps 0, 20, 40
  EXPECT_EQ(counts["checkpoint"], 2);
  EXPECT_EQ(counts["report"], 1);
  EXPECT_LT(last_loss, first_loss - 1.0)
      << "loss did not fall: " << first_loss << " -> " << last_loss;
  const auto ckpts = list_checkpoints(dir + "/run");
  ASSERT_EQ(ckpts.size(), 2u);
  EXPECT_EQ(ckpts.back().step, 40);
  for (const char* f :
       {"model.safetensors", "config.json", "optimizer.safetensors", "trainer_state.json"})
    EXPECT_TRUE(fs::exists(fs::path(ckpts.back().path) / f)) << f;
  LoadedCheckpoint c = read_checkpoint(ckpts.back().path);
  EXPECT_EQ(c.state.value("step", 0), 40);
  EXPECT_EQ(c.config.dim, 24);
  // Every option is recorded, as given on the command line (enums by name).
  ASSERT_TRUE(c.state.contains("options")) << c.state.dump();
  EXPECT_EQ(c.state["options"]["eval_every"], 20);
  EXPECT_EQ(c.state["options"]["sampling"], "random");
  EXPECT_EQ(c.state["options"]["on_ckpt_error"], "stop");
  EXPECT_EQ(c.state["options"]["val_data"], nlohmann::json::array({dir + "/val.bin"}));
  // Continuing without --resume into the same --out is refused (nothing is overwritten).
  r = run_kiln(base_args("run") + std::vector<std::string>{"--steps", "2"}, dir);
  EXPECT_EQ(r.code, 2) << r.err;
}

// 2N steps straight == N steps, then --resume to 2N: identical bytes.
TEST_F(Trainer, ResumeIsBitwiseExact) {
  for (std::string sampling : {"sequential", "random"}) {
    SCOPED_TRACE(sampling);
    auto common =
        std::vector<std::string>{"--lr", "3e-3",       "--warmup", "0",       "--min-lr-frac",
                                 "1",    "--sampling", sampling,   "--accum", "2"};
    auto r = run_kiln(
        base_args("full-" + sampling) + common + std::vector<std::string>{"--steps", "8"}, dir);
    ASSERT_EQ(r.code, 0) << r.err;
    r = run_kiln(base_args("part-" + sampling) + common + std::vector<std::string>{"--steps", "4"},
                 dir);
    ASSERT_EQ(r.code, 0) << r.err;
    r = run_kiln(base_args("part-" + sampling) + common +
                     std::vector<std::string>{"--steps", "8", "--resume"},
                 dir);
    ASSERT_EQ(r.code, 0) << r.err;
    for (const char* f : {"model.safetensors", "optimizer.safetensors"}) {
      const std::string a =
          kiln::test::read_text_file(dir + "/full-" + sampling + "/step-000008/" + f);
      const std::string b =
          kiln::test::read_text_file(dir + "/part-" + sampling + "/step-000008/" + f);
      ASSERT_FALSE(a.empty());
      EXPECT_TRUE(a == b) << f << " differs after resume";
    }
  }
}

// The resume promise with the options that carry state of their own: validation
// (its batches and eval schedule), --compact-vocab (the used-token set), fp32 on
// a host whose default is bf16, and a run stopped by SIGTERM instead of by its
// step count. Each: 8 steps straight == stopped at 4 (or by the signal) + --resume.
TEST_F(Trainer, ResumeIsBitwiseExactWithStatefulOptions) {
  // Half the vocabulary unused, so --compact-vocab really compacts.
  std::vector<uint16_t> half = make_tokens(6000, 7);
  for (uint16_t& t : half) t = uint16_t(t % (kVocab / 2));
  write_tokens(dir + "/half.bin", half);
  struct Variant {
    std::string name;
    std::vector<std::string> flags;
    bool sigterm = false;
    std::string data = {};  // instead of train.bin
  };
  const std::vector<Variant> variants = {
      {"val", {"--val-data", dir + "/val.bin", "--eval-every", "3", "--eval-batches", "2"}},
      {"compact", {"--compact-vocab"}, false, dir + "/half.bin"},
      {"fp32", {"--dtype", "fp32"}},
      {"sigterm", {"--sampling", "random"}, true},
  };
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.name);
    // Constant LR: the run stopped at 4 steps has --steps 4, and a cosine would differ.
    const auto common =
        v.flags + std::vector<std::string>{"--lr", "3e-3", "--warmup", "0", "--min-lr-frac", "1"};
    auto base_args = [&](const std::string& out) {
      std::vector<std::string> args = this->base_args(out);
      if (!v.data.empty()) args[4] = v.data;  // the value after --data
      return args;
    };
    // The signalled run stops wherever SIGTERM finds it (a few steps after the
    // second is logged), so it gets room to stop well before the end.
    const int total = v.sigterm ? 40 : 8;
    const std::string last =
        "/step-0000" + std::string(total < 10 ? "0" : "") + std::to_string(total) + "/";
    auto r = run_kiln(base_args("full-" + v.name) + common +
                          std::vector<std::string>{"--steps", std::to_string(total)},
                      dir);
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string part = "part-" + v.name;
    if (v.sigterm) {
      // A run far longer than 8 steps (the LR is constant, so its length does not
      // change the updates), stopped by SIGTERM after its second step.
      const pid_t pid =
          spawn_kiln(base_args(part) + common + std::vector<std::string>{"--steps", "100000"},
                     dir + "/sigterm.out");
      ASSERT_GE(pid, 0);
      ASSERT_EQ(signal_after_step(pid, dir + "/" + part + "/metrics.jsonl", 2, SIGTERM), 130);
    } else {
      r = run_kiln(base_args(part) + common + std::vector<std::string>{"--steps", "4"}, dir);
      ASSERT_EQ(r.code, 0) << r.err;
    }
    ASSERT_FALSE(list_checkpoints(dir + "/" + part).empty());
    EXPECT_LT(list_checkpoints(dir + "/" + part).back().step, total) << "nothing left to resume";
    r = run_kiln(base_args(part) + common +
                     std::vector<std::string>{"--steps", std::to_string(total), "--resume"},
                 dir);
    ASSERT_EQ(r.code, 0) << r.err;
    for (const char* f : {"model.safetensors", "optimizer.safetensors"}) {
      const std::string a = kiln::test::read_text_file(dir + "/full-" + v.name + last + f);
      const std::string b = kiln::test::read_text_file(dir + "/" + part + last + f);
      ASSERT_FALSE(a.empty());
      EXPECT_TRUE(a == b) << f << " differs after resume";
    }
    if (v.name == "val") {
      // The resumed run's evaluations are the uninterrupted run's, value for value.
      auto evals = [&](const std::string& out) {
        std::map<int, double> e;
        for (const auto& m : metrics(out))
          if (m["type"] == "eval") e[m["step"].get<int>()] = m["val_loss"].get<double>();
        return e;
      };
      const auto full = evals("full-val"), resumed = evals(part);
      EXPECT_EQ(full.size(), 4u) << "evals at steps 0, 3, 6, 8";
      for (const auto& [step, loss] : full)
        if (resumed.count(step)) {
          EXPECT_EQ(resumed.at(step), loss) << "eval at step " << step;
        }
      EXPECT_TRUE(resumed.count(8));
    }
  }
}

// Three sequential fp32 steps through the CLI equal the fp64 oracle fed the
// same batches ((k*B + b) * T windows) with fp64 AdamW and the same schedule.
TEST_F(Trainer, SequentialStepsMatchOracle) {
  const int B = 2, T = 16, steps = 3;
  auto r = run_kiln(
      base_args("oracle") +
          std::vector<std::string>{"--steps", "3", "--dtype", "fp32", "--sampling", "sequential",
                                   "--lr", "1e-2", "--warmup", "1", "--seed", "7", "--clip", "0.5"},
      dir);
  ASSERT_EQ(r.code, 0) << r.err;
  ModelConfig c = config_from_json(config, "tiny");
  ref::RefModel model = ref::make_ref_model(c, 7);
  const int64_t P = model.layout.total();
  std::vector<double> m(P, 0), v(P, 0);
  LrSchedule schedule{1e-2, 1, steps, 0.1};
  for (int s = 0; s < steps; ++s) {
    std::vector<int32_t> tokens(B * T), targets(B * T);
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < T; ++t) {
        const int64_t start = (int64_t(s) * B + b) * T;
        tokens[b * T + t] = train_tokens[start + t];
        targets[b * T + t] = train_tokens[start + t + 1];
      }
    std::vector<double> g;
    ref::ref_loss_and_grads(model, tokens, targets, B, T, &g);
    const double norm = ref::global_norm(g);
    for (const DecaySegment& seg : decay_segments(model.layout)) {
      auto slice = [&](const std::vector<double>& x) {
        return std::vector<double>(x.begin() + seg.offset, x.begin() + seg.offset + seg.count);
      };
      std::vector<double> p = slice(model.params), gs = slice(g), ms = slice(m), vs = slice(v);
      ref::AdamWHyperRef h{float(schedule.at(s)),  0.9f, 0.95f, 1e-8f,
                           seg.decay ? 0.1f : 0.0, 0.5,  s + 1};
      ref::adamw(p, gs, ms, vs, h, norm);
      std::copy(p.begin(), p.end(), model.params.begin() + seg.offset);
      std::copy(ms.begin(), ms.end(), m.begin() + seg.offset);
      std::copy(vs.begin(), vs.end(), v.begin() + seg.offset);
    }
  }
  LoadedCheckpoint ckpt = read_checkpoint(dir + "/oracle/step-000003");
  for (const auto& e : ref::per_tensor_errors(model.layout, ckpt.params, model.params))
    EXPECT_LE(e.error, 1e-4) << e.name;
}

TEST_F(Trainer, ExportsLlama2cAndHuggingFace) {
  auto r = run_kiln(base_args("run") + std::vector<std::string>{"--steps", "2"}, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_kiln({"export", "--model", dir + "/run", "--format", "llama2c", "--out", dir + "/m.bin"},
               dir);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_kiln({"export", "--model", dir + "/run", "--format", "hf", "--out", dir + "/hf"}, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  LoadedCheckpoint ckpt = read_checkpoint(dir + "/run/step-000002");
  ImportedModel imported = load_llama2c(dir + "/m.bin");
  EXPECT_EQ(imported.params, ckpt.params);  // the Wq/Wk permutation round-trips exactly
  SafetensorsReader hf(dir + "/hf/model.safetensors");
  ParamLayout layout(ckpt.config);
  EXPECT_EQ(hf.tensors().size(), layout.params().size());
  for (const ParamInfo& p : layout.params()) {
    const auto* entry = hf.find(p.name);
    ASSERT_NE(entry, nullptr) << p.name;
    EXPECT_EQ(entry->shape, p.shape) << p.name;
  }
  EXPECT_NE(hf.find("model.layers.1.self_attn.k_proj.weight"), nullptr);
  auto hf_config = nlohmann::json::parse(kiln::test::read_text_file(dir + "/hf/config.json"));
  EXPECT_EQ(hf_config["hidden_size"], 24);
  EXPECT_EQ(hf_config["num_key_value_heads"], 2);
  // Training can continue from the exported llama2.c model.
  r = run_kiln({"train", "--model", dir + "/m.bin", "--data", dir + "/train.bin", "--batch", "2",
                "--seq", "16", "--steps", "1", "--out", dir + "/from-bin", "--quiet"},
               dir);
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(Trainer, BadInputExitsTwoAndWritesNothing) {
  struct Bad {
    std::vector<std::string> args;
    std::string needle;
  };
  std::vector<uint16_t> high = make_tokens(100, 3);
  high[57] = kVocab + 5;
  write_tokens(dir + "/high.bin", high);
  kiln::test::write_text_file(dir + "/odd.bin", "abc");
  const std::vector<Bad> cases = {
      {{"--data", dir + "/missing.bin"}, "missing.bin"},
      {{"--data", dir + "/high.bin"}, "high.bin"},
      {{"--data", dir + "/odd.bin"}, "odd.bin"},
      {{"--batch", "0"}, "--batch"},
      {{"--seq", "33"}, "--seq"},
      {{"--lr", "nan"}, "--lr"},
      {{"--lr", "-1"}, "--lr"},
      {{"--beta2", "1.5"}, "--beta2"},
      {{"--no-such-flag"}, "no-such-flag"},
      {{"--dtype", "fp8"}, "--dtype"},
      {{"--sampling", "zigzag"}, "--sampling"},
      {{"--lr", "inf"}, "--lr"},
      {{"--min-lr-frac", "1.5"}, "--min-lr-frac"},
      {{"--rollback-lr-scale", "0"}, "--rollback-lr-scale"},
      {{"--warmup", "-2"}, "--warmup"},
      {{"--on-nonfinite", "ignore"}, "--on-nonfinite"},
      {{"--on-ckpt-error", "retry"}, "--on-ckpt-error"},
      {{"--device", "tpu"}, "--device"},
  };
  for (const Bad& bad : cases) {
    std::vector<std::string> args = base_args("bad") + std::vector<std::string>{"--steps", "2"};
    args.insert(args.end(), bad.args.begin(), bad.args.end());
    auto r = run_kiln(args, dir);
    EXPECT_EQ(r.code, 2) << bad.needle << ": " << r.err;
    EXPECT_NE(r.err.find("kiln: error:"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(bad.needle), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir + "/bad")) << bad.needle << " left --out behind";
  }
  // An unknown preset.
  {
    std::vector<std::string> args = base_args("bad");
    args[2] = "stories999M";
    auto r = run_kiln(args + std::vector<std::string>{"--steps", "1"}, dir);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("stories999M"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir + "/bad"));
  }
  // A checkpoint of another shape: --resume with a different model.
  auto r = run_kiln(base_args("shape") + std::vector<std::string>{"--steps", "1"}, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  config["dim"] = 32;
  kiln::test::write_text_file(dir + "/other.json", config.dump());
  std::vector<std::string> args = base_args("shape");
  args[2] = dir + "/other.json";
  r = run_kiln(args + std::vector<std::string>{"--steps", "2", "--resume"}, dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("shape"), std::string::npos) << r.err;
  // The options that decide the batches (must_match in train_options.h) may not
  // change on --resume; every changed one is named with both values.
  r = run_kiln(base_args("shape") + std::vector<std::string>{"--steps", "2", "--resume", "--accum",
                                                             "2", "--compact-vocab"},
               dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--accum 2 (checkpoint: 1)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--compact-vocab true (checkpoint: false)"), std::string::npos) << r.err;
  // ... while the others may (a longer run, another LR).
  r = run_kiln(
      base_args("shape") + std::vector<std::string>{"--steps", "2", "--resume", "--lr", "1e-4"},
      dir);
  EXPECT_EQ(r.code, 0) << r.err;
}

// The non-finite guard, by fault injection (KILN_FAULT_NONFINITE poisons a step's gradients).
TEST_F(Trainer, NonFiniteStepIsSkipped) {
  setenv("KILN_FAULT_NONFINITE", "3", 1);
  auto r = run_kiln(base_args("skip") + std::vector<std::string>{"--steps", "6"}, dir);
  unsetenv("KILN_FAULT_NONFINITE");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("step 3 skipped"), std::string::npos) << r.err;
  int skips = 0, steps = 0;
  for (const auto& m : metrics("skip")) {
    if (m["type"] == "skip") {
      ++skips;
      EXPECT_EQ(m["step"], 3);
    }
    if (m["type"] == "step") ++steps;
  }
  EXPECT_EQ(skips, 1);
  EXPECT_EQ(steps, 5);
  LoadedCheckpoint c = read_checkpoint(dir + "/skip/step-000006");
  EXPECT_EQ(c.state.value("adam_steps", 0), 5);  // the skipped step did not count for AdamW
  for (float p : c.params) ASSERT_TRUE(std::isfinite(p));
}

TEST_F(Trainer, ConsecutiveNonFiniteStepsRollBackThenStop) {
  setenv("KILN_FAULT_NONFINITE", "5,6,7", 1);
  auto r =
      run_kiln(base_args("rollback") + std::vector<std::string>{"--steps", "10", "--ckpt-every",
                                                                "4", "--max-skips", "3"},
               dir);
  const std::string rollback_err = r.err;
  const int rollback_code = r.code;
  r = run_kiln(base_args("stop") + std::vector<std::string>{"--steps", "10", "--max-skips", "2",
                                                            "--on-nonfinite", "stop"},
               dir);
  unsetenv("KILN_FAULT_NONFINITE");
  // The injected fault recurs at the same steps, so rollbacks cannot escape it:
  // after three rollbacks (LR 0.5, 0.25, 0.125) the run stops cleanly.
  EXPECT_EQ(rollback_code, 1) << rollback_err;
  EXPECT_NE(rollback_err.find("rolled back to"), std::string::npos) << rollback_err;
  std::vector<double> scales;
  for (const auto& m : metrics("rollback"))
    if (m["type"] == "rollback") scales.push_back(m["lr_scale"]);
  EXPECT_EQ(scales, (std::vector<double>{0.5, 0.25, 0.125}));
  EXPECT_NO_THROW(verify_checkpoint(dir + "/rollback/step-000004"));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("consecutive non-finite steps"), std::string::npos) << r.err;
}

// SIGINT: the step finishes, a checkpoint is written, the report printed, exit 130.
TEST_F(Trainer, SigintCheckpointsAndReports) {
  std::vector<std::string> args =
      base_args("sigint") + std::vector<std::string>{"--steps", "100000"};
  const std::string out_path = dir + "/sigint.out";
  const pid_t pid = spawn_kiln(args, out_path);
  ASSERT_GE(pid, 0);
  // Wait until a few steps are logged, then interrupt.
  const std::string metrics_path = dir + "/sigint/metrics.jsonl";
  EXPECT_EQ(signal_after_step(pid, metrics_path, 3, SIGINT), 130);
  const auto ckpts = list_checkpoints(dir + "/sigint");
  ASSERT_EQ(ckpts.size(), 1u);
  EXPECT_GE(ckpts.back().step, 3);
  EXPECT_NO_THROW(verify_checkpoint(ckpts.back().path));
  EXPECT_NE(kiln::test::read_text_file(out_path).find("Efficiency Report"), std::string::npos);
  EXPECT_NE(kiln::test::read_text_file(metrics_path).find("\"type\":\"report\""),
            std::string::npos);
}

// SIGKILL at random moments, then --resume again and again: the final weights
// are bitwise those of a run that was never interrupted.
TEST_F(Trainer, KilledAndResumedRunIsBitwiseExact) {
  const std::vector<std::string> common = {
      "--steps", "30", "--ckpt-every", "1", "--keep", "2", "--sampling", "random", "--lr", "3e-3"};
  auto r = run_kiln(base_args("straight") + common, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  // Kills follow the run's progress, not the clock (a fixed delay lets a fast machine
  // finish first): kill k lands 0-20 ms after the log reaches step 2 + 4k + (0..3), so
  // it may hit a step, a checkpoint write, or a resumed run's start-up.
  const std::string metrics_path = dir + "/killed/metrics.jsonl";
  auto logged_step = [&] {
    const std::string text = kiln::test::read_text_file(metrics_path);
    const size_t at = text.rfind("\"step\":");
    return at == std::string::npos ? 0 : std::atoi(text.c_str() + at + 7);
  };
  Rng rng(2024, 5);
  int kills = 0;
  for (int attempt = 0; attempt < 40; ++attempt) {
    const pid_t pid = spawn_kiln(
        base_args("killed") + common + std::vector<std::string>{"--resume"}, "/dev/null");
    ASSERT_GE(pid, 0);
    int status = 0;
    if (kills < 6) {
      const int target = 2 + 4 * kills + int(rng.below(4));
      bool exited = false;
      for (int i = 0; i < 20000 && !exited && logged_step() < target; ++i) {
        exited = waitpid(pid, &status, WNOHANG) == pid;
        usleep(1000);
      }
      if (!exited) {
        usleep(useconds_t(rng.below(20000)));
        exited = waitpid(pid, &status, WNOHANG) == pid;
      }
      if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ++kills;
        continue;
      }
    } else {
      waitpid(pid, &status, 0);
    }
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    if (!list_checkpoints(dir + "/killed").empty() &&
        list_checkpoints(dir + "/killed").back().step == 30)
      break;
  }
  EXPECT_GE(kills, 5);
  const auto ckpts = list_checkpoints(dir + "/killed");
  ASSERT_FALSE(ckpts.empty());
  ASSERT_EQ(ckpts.back().step, 30);
  for (const char* f : {"model.safetensors", "optimizer.safetensors"})
    EXPECT_TRUE(kiln::test::read_text_file(dir + "/straight/step-000030/" + f) ==
                kiln::test::read_text_file(ckpts.back().path + "/" + f))
        << f << " differs after " << kills << " kills";
  // What the killed writers left half-written was cleaned up by the runs after them.
  for (const auto& e : fs::directory_iterator(dir + "/killed"))
    EXPECT_FALSE(e.path().filename().string().starts_with(".tmp-")) << e.path();
}
