#include "io/checkpoint.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/file_util.h"
#include "io/model_safetensors.h"
#include "io/safetensors.h"

namespace kiln {
namespace fs = std::filesystem;

namespace {

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kConfigFile = "config.json";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "trainer_state.json";
constexpr uint64_t kMaxJsonBytes = 64ull << 20;

std::string join(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / file).string();
}

nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  const std::string text = read_file(path, kMaxJsonBytes, what);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail_input(path, what + " is not valid JSON: " + e.what());
  }
}

// A name listed in "files" must be a plain file inside the checkpoint dir.
bool plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

// Reads trainer_state.json and checks every file it lists; returns the state.
nlohmann::json verified_state(const std::string& dir) {
  const std::string state_path = join(dir, kStateFile);
  if (!path_exists(state_path))
    fail_input(dir, "not a complete checkpoint: trainer_state.json is missing");
  nlohmann::json state = read_json_file(state_path, "trainer state");
  if (!state.is_object())
    fail_input(state_path, "trainer state must be a JSON object", "an object", state.type_name());
  auto files = state.find("files");
  if (files == state.end() || !files->is_object())
    fail_input(state_path, "trainer state has no \"files\" checksum map");
  for (const char* required : {kModelFile, kConfigFile})
    if (!files->contains(required))
      fail_input(state_path, std::string("\"files\" does not list ") + required);

  for (const auto& [name, info] : files->items()) {
    if (!plain_file_name(name) || name == kStateFile)
      fail_input(state_path, "\"files\" lists an invalid file name", "a file in the checkpoint",
                 name);
    const std::string path = join(dir, name);
    if (!info.is_object() || !info.contains("size") || !info["size"].is_number_unsigned() ||
        !info.contains("xxh64") || !info["xxh64"].is_string())
      fail_input(state_path, "\"files\" entry for " + name + " is malformed",
                 "{\"size\": bytes, \"xxh64\": hex}", info.dump());
    if (!path_exists(path)) fail_input(path, "checkpoint file is missing");
    const uint64_t want_size = info["size"].get<uint64_t>();
    const uint64_t got_size = file_size(path);
    if (got_size != want_size)
      fail_input(path, "checkpoint file is damaged: size differs from trainer_state.json",
                 std::to_string(want_size) + " bytes", std::to_string(got_size) + " bytes");
    const std::string want_hash = info["xxh64"].get<std::string>();
    const std::string got_hash = hex64(digest_file(path).xxh64);
    if (got_hash != want_hash)
      fail_input(path, "checkpoint file is damaged: xxh64 checksum differs from trainer_state.json",
                 want_hash, got_hash);
  }
  return state;
}

void check_contents(const std::string& where, const CheckpointContents& c) {
  if (!c.config || !c.layout || !c.params)
    fail_runtime(where, "checkpoint needs config, layout and params");
  if ((c.m == nullptr) != (c.v == nullptr))
    fail_runtime(where, "checkpoint needs both AdamW moments or neither");
  if (!c.state.is_object()) fail_runtime(where, "trainer state must be a JSON object");
  if (c.layout->total() != c.config->num_params())
    fail_runtime(where, "ParamLayout does not match the config");
}

// Reads optimizer.safetensors: "m.<name>" and "v.<name>" for every parameter.
void load_moments(const std::string& path, const ParamLayout& layout, std::vector<float>* m,
                  std::vector<float>* v) {
  SafetensorsReader reader(path);
  m->assign(size_t(layout.total()), 0.0f);
  v->assign(size_t(layout.total()), 0.0f);
  for (const ParamInfo& p : layout.params()) {
    for (auto [prefix, buffer] : {std::pair{"m.", m}, std::pair{"v.", v}}) {
      const std::string name = prefix + p.name;
      const SafetensorsEntry* e = reader.find(name);
      if (!e)
        fail_input(path, "tensor \"" + name + "\" is missing", shape_string(p.shape), "nothing");
      if (e->shape != p.shape)
        fail_input(path, "tensor \"" + name + "\" has the wrong shape", shape_string(p.shape),
                   shape_string(e->shape));
      float* dst = buffer->data() + p.offset;
      reader.read_f32(name, dst, p.numel());
      check_finite(path, name, dst, p.numel());
    }
    // exp_avg_sq is a running mean of squares: a negative entry is corruption
    // that would turn into NaN in sqrt(v) at the first step.
    const float* vp = v->data() + p.offset;
    for (int64_t i = 0; i < p.numel(); ++i)
      if (vp[i] < 0.0f)
        fail_input(path, "tensor \"v." + p.name + "\" has a negative second moment", ">= 0",
                   std::to_string(vp[i]));
  }
  if (reader.tensors().size() != 2 * layout.params().size())
    fail_input(path, "optimizer state has tensors the model does not",
               std::to_string(2 * layout.params().size()) + " tensors",
               std::to_string(reader.tensors().size()));
}

// text is all decimal digits and fits an int64_t.
bool parse_digits(const std::string& text, int64_t* value) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return false;
  const char* last = text.data() + text.size();
  auto [ptr, err] = std::from_chars(text.data(), last, *value);
  return err == std::errc() && ptr == last;
}

void remove_tree_quietly(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "step-%06lld", static_cast<long long>(step));
  return buf;
}

std::string write_checkpoint(const std::string& parent, const std::string& name,
                             const CheckpointContents& contents) {
  const std::string final_dir = join(parent, name);
  check_contents(final_dir, contents);
  if (!plain_file_name(name) || name.starts_with("."))
    fail_runtime(final_dir, "checkpoint name must be a plain, non-hidden directory name");
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) fail_runtime(parent, "cannot create checkpoint directory: " + ec.message());

  const std::string pid = std::to_string(::getpid());
  const std::string temp_dir = join(parent, ".tmp-" + name + "-" + pid);
  remove_tree_quietly(temp_dir);  // a leftover of an earlier crash with our pid
  if (!fs::create_directory(temp_dir, ec) || ec)
    fail_runtime(temp_dir, "cannot create temporary checkpoint directory: " + ec.message());

  try {
    const ModelConfig& config = *contents.config;
    const ParamLayout& layout = *contents.layout;
    nlohmann::json files = nlohmann::json::object();
    auto record = [&](const char* file, const FileDigest& d) {
      files[file] = {{"size", d.size}, {"xxh64", hex64(d.xxh64)}};
    };
    record(kModelFile,
           save_model_safetensors(join(temp_dir, kModelFile), config, layout, contents.params));
    record(kConfigFile, save_hf_config(join(temp_dir, kConfigFile), config));
    if (contents.m) {
      std::vector<SafetensorsTensorRef> tensors;
      for (const ParamInfo& p : layout.params())
        tensors.push_back({"m." + p.name, DType::f32, p.shape, contents.m + p.offset});
      for (const ParamInfo& p : layout.params())
        tensors.push_back({"v." + p.name, DType::f32, p.shape, contents.v + p.offset});
      record(kOptimizerFile, write_safetensors(join(temp_dir, kOptimizerFile), tensors,
                                               {{"format", "kiln-adamw"}}));
    }
    // Written last: its presence with matching digests is what makes a checkpoint complete.
    nlohmann::json state = contents.state;
    state["files"] = files;
    write_file_atomic(join(temp_dir, kStateFile), state.dump(2) + "\n");

    // Swap into place. rename() cannot replace a non-empty directory, so an
    // existing checkpoint of the same name is moved aside first and deleted
    // only once the new one is in place.
    std::string old_dir;
    if (path_exists(final_dir)) {
      old_dir = join(parent, ".tmp-old-" + name + "-" + pid);
      remove_tree_quietly(old_dir);
      if (std::rename(final_dir.c_str(), old_dir.c_str()) != 0)
        fail_runtime(final_dir, "cannot move the previous checkpoint aside");
    }
    if (std::rename(temp_dir.c_str(), final_dir.c_str()) != 0) {
      if (!old_dir.empty()) std::rename(old_dir.c_str(), final_dir.c_str());
      fail_runtime(final_dir, "cannot rename the finished checkpoint into place");
    }
    fsync_dir(parent);
    if (!old_dir.empty()) remove_tree_quietly(old_dir);
  } catch (...) {
    remove_tree_quietly(temp_dir);
    throw;
  }
  return final_dir;
}

void verify_checkpoint(const std::string& dir) { verified_state(dir); }

LoadedCheckpoint read_checkpoint(const std::string& dir) {
  nlohmann::json state = verified_state(dir);
  LoadedCheckpoint ck;
  ck.dir = dir;
  const std::string config_path = join(dir, kConfigFile);
  ck.config = config_from_json(read_json_file(config_path, "model config"), config_path);
  const ParamLayout layout(ck.config);
  // config.json alone must not make us allocate: every parameter takes at
  // least 2 bytes in model.safetensors (BF16/F16), so a config that promises
  // more parameters than that file can hold is refused before the allocation.
  const std::string model_path = join(dir, kModelFile);
  const uint64_t model_bytes = file_size(model_path);
  if (uint64_t(layout.total()) > model_bytes / 2)
    fail_input(model_path, "model.safetensors is too small for the model in config.json",
               "at least " + std::to_string(uint64_t(layout.total()) * 2) + " bytes for " +
                   std::to_string(layout.total()) + " parameters",
               std::to_string(model_bytes) + " bytes");
  ck.params.assign(size_t(layout.total()), 0.0f);
  load_model_safetensors(model_path, ck.config, layout, ck.params.data());
  if (state["files"].contains(kOptimizerFile))
    load_moments(join(dir, kOptimizerFile), layout, &ck.m, &ck.v);
  state.erase("files");
  ck.state = std::move(state);
  return ck;
}

std::vector<CheckpointEntry> list_checkpoints(const std::string& parent) {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) return out;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("step-") || name.size() == 5) continue;
    int64_t step = 0;
    if (!parse_digits(name.substr(5), &step)) continue;  // not all digits, or too big
    std::error_code e2;
    if (!entry.is_directory(e2) || !fs::exists(entry.path() / kStateFile, e2)) continue;
    out.push_back({entry.path().string(), step});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.step != b.step ? a.step < b.step : a.path < b.path;
  });
  return out;
}

std::optional<LoadedCheckpoint> latest_valid_checkpoint(
    const std::string& parent, const std::function<void(const std::string&)>& warn) {
  const std::vector<CheckpointEntry> all = list_checkpoints(parent);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      return read_checkpoint(it->path);
    } catch (const InputError& e) {
      if (warn) warn(std::string(e.what()) + "; skipping damaged checkpoint " + it->path);
    } catch (const RuntimeError& e) {
      if (warn) warn(std::string(e.what()) + "; skipping unreadable checkpoint " + it->path);
    }
  }
  return std::nullopt;
}

std::vector<std::string> remove_stale_temp_dirs(const std::string& parent) {
  std::vector<std::string> removed;
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) return removed;
  // .tmp-<what>-<pid>: only a dir whose writer is gone (kill(pid, 0) says no such
  // process) is stale; one of a live process, or not named like ours, is left alone.
  std::vector<std::pair<fs::path, std::string>> stale;  // (dir, <what>)
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t dash = name.rfind('-');
    int64_t pid = 0;
    if (!name.starts_with(".tmp-") || dash < 5 || !parse_digits(name.substr(dash + 1), &pid) ||
        pid <= 0 || pid > INT32_MAX || pid == ::getpid())
      continue;
    if (::kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code e2;
    if (entry.is_directory(e2)) stale.emplace_back(entry.path(), name.substr(5, dash - 5));
  }
  for (const auto& [dir, what] : stale) {
    // .tmp-old-<name>-<pid> is a finished checkpoint moved aside while one of the same
    // name was written: if the writer died before the new one took its place, it is
    // the only copy, and it goes back rather than away.
    if (what.starts_with("old-step-")) {
      const fs::path target = fs::path(parent) / what.substr(4);
      std::error_code e2;
      if (plain_file_name(what.substr(4)) && !fs::exists(target, e2) &&
          std::rename(dir.c_str(), target.c_str()) == 0)
        continue;
    }
    remove_tree_quietly(dir.string());
    removed.push_back(dir.string());
  }
  if (!stale.empty()) fsync_dir(parent);
  return removed;
}

std::vector<std::string> rotate_checkpoints(const std::string& parent, int keep) {
  const std::vector<CheckpointEntry> all = list_checkpoints(parent);
  const size_t keep_n = size_t(std::max(keep, 1));
  std::vector<std::string> deleted;
  if (all.size() <= keep_n) return deleted;
  const std::string pid = std::to_string(::getpid());
  for (size_t i = 0; i + keep_n < all.size(); ++i) {
    // Rename first, so a crash mid-delete leaves an ignored .tmp dir rather
    // than a half-deleted directory that still looks like a checkpoint.
    const std::string doomed =
        join(parent, ".tmp-del-" + fs::path(all[i].path).filename().string() + "-" + pid);
    if (std::rename(all[i].path.c_str(), doomed.c_str()) != 0)
      fail_runtime(all[i].path, "cannot remove old checkpoint");
    remove_tree_quietly(doomed);
    deleted.push_back(all[i].path);
  }
  fsync_dir(parent);
  return deleted;
}

}  // namespace kiln
