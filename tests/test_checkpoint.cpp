// Checkpoint directories: exact write -> read, checksums that catch a flipped
// byte, fallback to the previous checkpoint, no temp dirs left, rotation.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "io/checkpoint.h"
#include "io/file_util.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/param_layout.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

std::string test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::path(KILN_TEST_TMPDIR) / "checkpoint" /
                 (std::string(info->test_suite_name()) + "." + info->name() + "." +
                  std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

ModelConfig tiny_config(bool tied) {
  ModelConfig c;
  c.dim = 12;
  c.n_layers = 2;
  c.n_heads = 3;
  c.n_kv_heads = 1;  // GQA ratio 3
  c.head_dim = 4;
  c.hidden_dim = 20;
  c.vocab_size = 9;
  c.max_seq_len = 16;
  c.norm_eps = 1e-6;
  c.rope_theta = 500000.0;
  c.tie_embeddings = tied;
  c.validate("tiny");
  return c;
}

// A model with params, AdamW moments (v >= 0) and a trainer state.
struct Model {
  ModelConfig config;
  ParamLayout layout;
  std::vector<float> params, m, v;
  nlohmann::json state;

  Model(bool tied, uint64_t seed) : config(tiny_config(tied)), layout(config) {
    Rng rng(seed, 1);
    params.resize(size_t(layout.total()));
    m.resize(params.size());
    v.resize(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      params[i] = rng.normal();
      m[i] = 0.1f * rng.normal();
      v[i] = 0.01f * std::fabs(rng.normal());
    }
    state = {{"step", int64_t(seed)},
             {"tokens_seen", 4096 * seed},
             {"rng", {{"state", 1234567890123ull}, {"inc", 17}}},
             {"lr", 3e-4}};
  }

  CheckpointContents contents(bool with_moments = true) const {
    CheckpointContents c;
    c.config = &config;
    c.layout = &layout;
    c.params = params.data();
    c.m = with_moments ? m.data() : nullptr;
    c.v = with_moments ? v.data() : nullptr;
    c.state = state;
    return c;
  }
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

std::vector<std::string> temp_entries(const std::string& parent) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(parent))
    if (e.path().filename().string().starts_with(".")) out.push_back(e.path().string());
  return out;
}

void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c = 0;
  f.read(&c, 1);
  c = char(c ^ 0x10);
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
}

}  // namespace

TEST(Checkpoint, NameHasSixDigits) {
  EXPECT_EQ(checkpoint_name(123), "step-000123");
  EXPECT_EQ(checkpoint_name(1234567), "step-1234567");
}

TEST(Checkpoint, WriteThenReadIsExact) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const std::string parent = test_dir() + "/run";
    const Model model(tied, 7);
    const std::string dir = write_checkpoint(parent, "step-000007", model.contents());
    EXPECT_EQ(dir, parent + "/step-000007");
    EXPECT_TRUE(temp_entries(parent).empty()) << temp_entries(parent)[0];

    // trainer_state.json lists every other file with its real size and xxh64.
    std::ifstream in(dir + "/trainer_state.json");
    const nlohmann::json state = nlohmann::json::parse(in);
    ASSERT_EQ(state["files"].size(), 3u);
    for (const char* f : {"model.safetensors", "config.json", "optimizer.safetensors"}) {
      const FileDigest d = digest_file(dir + "/" + f);
      EXPECT_EQ(state["files"][f]["size"].get<uint64_t>(), d.size) << f;
      EXPECT_EQ(state["files"][f]["xxh64"].get<std::string>(), hex64(d.xxh64)) << f;
    }
    // The optimizer tensors are named after the parameters.
    SafetensorsReader opt(dir + "/optimizer.safetensors");
    EXPECT_NE(opt.find("m.model.layers.1.self_attn.v_proj.weight"), nullptr);
    EXPECT_NE(opt.find("v.model.norm.weight"), nullptr);

    const LoadedCheckpoint back = read_checkpoint(dir);
    EXPECT_EQ(back.config.dim, model.config.dim);
    EXPECT_EQ(back.config.n_kv_heads, model.config.n_kv_heads);
    EXPECT_EQ(back.config.head_dim, model.config.head_dim);
    EXPECT_EQ(back.config.tie_embeddings, tied);
    EXPECT_EQ(back.config.norm_eps, model.config.norm_eps);
    EXPECT_EQ(back.config.rope_theta, model.config.rope_theta);
    EXPECT_TRUE(same_bits(back.params, model.params));
    EXPECT_TRUE(same_bits(back.m, model.m));
    EXPECT_TRUE(same_bits(back.v, model.v));
    EXPECT_EQ(back.state, model.state);  // as the trainer wrote it, without "files"
  }
}

TEST(Checkpoint, WithoutOptimizerState) {
  const std::string parent = test_dir();
  const Model model(true, 3);
  const std::string dir = write_checkpoint(parent, "step-000003", model.contents(false));
  EXPECT_FALSE(fs::exists(dir + "/optimizer.safetensors"));
  const LoadedCheckpoint back = read_checkpoint(dir);
  EXPECT_TRUE(same_bits(back.params, model.params));
  EXPECT_TRUE(back.m.empty());
  EXPECT_TRUE(back.v.empty());
}

TEST(Checkpoint, RewritingTheSameNameReplacesIt) {
  const std::string parent = test_dir();
  const Model first(false, 1), second(false, 2);
  write_checkpoint(parent, "step-000005", first.contents());
  write_checkpoint(parent, "step-000005", second.contents());
  EXPECT_TRUE(temp_entries(parent).empty());
  const LoadedCheckpoint back = read_checkpoint(parent + "/step-000005");
  EXPECT_TRUE(same_bits(back.params, second.params));
  EXPECT_EQ(back.state, second.state);
}

TEST(Checkpoint, DamagedFileIsNamedAndLatestValidFallsBack) {
  const std::string parent = test_dir();
  const Model older(false, 1), newer(false, 2);
  write_checkpoint(parent, checkpoint_name(100), older.contents());
  const std::string bad = write_checkpoint(parent, checkpoint_name(200), newer.contents());

  const std::string model_file = bad + "/model.safetensors";
  flip_byte(model_file, file_size(model_file) - 5);  // inside the last tensor's data
  for (auto fn : {+[](const std::string& d) { verify_checkpoint(d); },
                  +[](const std::string& d) { read_checkpoint(d); }}) {
    try {
      fn(bad);
      ADD_FAILURE() << "damaged checkpoint accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(model_file), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("xxh64"), std::string::npos) << e.what();
    }
  }

  std::vector<std::string> warnings;
  const std::optional<LoadedCheckpoint> got =
      latest_valid_checkpoint(parent, [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->dir, parent + "/step-000100");
  EXPECT_TRUE(same_bits(got->params, older.params));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("step-000200"), std::string::npos) << warnings[0];

  // A truncated optimizer file in the older one too: nothing usable remains.
  const std::string opt = parent + "/step-000100/optimizer.safetensors";
  fs::resize_file(opt, file_size(opt) - 8);
  try {
    verify_checkpoint(parent + "/step-000100");
    ADD_FAILURE() << "truncated optimizer state accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(opt), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("size"), std::string::npos) << e.what();
  }
  warnings.clear();
  EXPECT_FALSE(latest_valid_checkpoint(parent, [&](const std::string& w) {
                 warnings.push_back(w);
               }).has_value());
  EXPECT_EQ(warnings.size(), 2u);
}

TEST(Checkpoint, MissingOrForgedStateIsRejected) {
  const std::string parent = test_dir();
  const Model model(true, 4);
  const std::string dir = write_checkpoint(parent, "step-000004", model.contents());
  // A listed file that was deleted.
  fs::remove(dir + "/config.json");
  EXPECT_THROW(verify_checkpoint(dir), InputError);
  // A "files" entry that escapes the directory.
  const std::string dir2 = write_checkpoint(parent, "step-000005", model.contents());
  std::ifstream in(dir2 + "/trainer_state.json");
  nlohmann::json state = nlohmann::json::parse(in);
  in.close();
  state["files"]["../step-000004/model.safetensors"] = state["files"]["model.safetensors"];
  std::ofstream(dir2 + "/trainer_state.json") << state.dump();
  try {
    verify_checkpoint(dir2);
    ADD_FAILURE() << "path escaping the checkpoint accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("invalid file name"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, ListSortsByStepAndIgnoresIncompleteDirs) {
  const std::string parent = test_dir();
  const Model model(true, 1);
  for (int64_t step : {10, 9, 1000000, 123})
    write_checkpoint(parent, checkpoint_name(step), model.contents(false));
  fs::create_directories(parent + "/.tmp-step-000500-99");  // an interrupted write
  fs::create_directories(parent + "/step-000600");          // no trainer_state.json
  fs::create_directories(parent + "/step-12x");
  fs::create_directories(parent + "/notes");
  const std::vector<CheckpointEntry> list = list_checkpoints(parent);
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0].step, 9);
  EXPECT_EQ(list[1].step, 10);
  EXPECT_EQ(list[2].step, 123);
  EXPECT_EQ(list[3].step, 1000000);
  EXPECT_EQ(list[3].path, parent + "/step-1000000");
  EXPECT_TRUE(list_checkpoints(parent + "/does-not-exist").empty());
}

TEST(Checkpoint, RotateKeepsTheNewestN) {
  const std::string parent = test_dir();
  const Model model(true, 1);
  for (int64_t step = 1; step <= 5; ++step)
    write_checkpoint(parent, checkpoint_name(step * 10), model.contents(false));
  const std::vector<std::string> deleted = rotate_checkpoints(parent, 2);
  EXPECT_EQ(deleted.size(), 3u);
  std::vector<CheckpointEntry> left = list_checkpoints(parent);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].step, 40);
  EXPECT_EQ(left[1].step, 50);
  EXPECT_TRUE(rotate_checkpoints(parent, 2).empty());
  // keep 0 never deletes the newest.
  rotate_checkpoints(parent, 0);
  left = list_checkpoints(parent);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].step, 50);
  EXPECT_TRUE(temp_entries(parent).empty());
}

// Temp dirs of writers that were killed mid-checkpoint are removed; those of live
// processes are kept; a finished checkpoint that was moved aside and never replaced
// is put back under its name.
TEST(Checkpoint, StaleTempDirsOfDeadWritersAreCleanedUp) {
  const std::string parent = test_dir();
  const Model model(true, 1);
  write_checkpoint(parent, checkpoint_name(3), model.contents(false));
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  const std::string dead = std::to_string(child);
  const std::string mine = std::to_string(::getpid());
  const std::string parent_pid = std::to_string(::getppid());  // alive: the test runner
  // step-000003 moved aside by a writer that died before its replacement landed.
  ASSERT_EQ(std::rename((fs::path(parent) / "step-000003").c_str(),
                        (fs::path(parent) / (".tmp-old-step-000003-" + dead)).c_str()),
            0);
  for (const std::string& name :
       {".tmp-step-000004-" + dead, ".tmp-del-step-000001-" + dead, ".tmp-step-000005-" + mine,
        ".tmp-step-000006-" + parent_pid, std::string(".tmp-step-000007-notapid")})
    fs::create_directories(fs::path(parent) / name / "inner");

  const std::vector<std::string> removed = remove_stale_temp_dirs(parent);
  EXPECT_EQ(removed.size(), 2u);
  std::vector<std::string> left;
  for (const std::string& path : temp_entries(parent))
    left.push_back(fs::path(path).filename().string());
  std::sort(left.begin(), left.end());
  const std::vector<std::string> expected = {
      ".tmp-step-000005-" + mine, ".tmp-step-000006-" + parent_pid, ".tmp-step-000007-notapid"};
  EXPECT_EQ(left, expected);
  const std::vector<CheckpointEntry> ckpts = list_checkpoints(parent);
  ASSERT_EQ(ckpts.size(), 1u);
  EXPECT_EQ(ckpts[0].step, 3);
  EXPECT_NO_THROW(verify_checkpoint(ckpts[0].path));
  EXPECT_TRUE(remove_stale_temp_dirs(parent).empty());
}
