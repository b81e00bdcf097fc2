// libFuzzer target: checkpoint directories (trainer_state.json with its
// checksum map, config.json, model.safetensors, optimizer.safetensors) through
// verify_checkpoint, read_checkpoint, list_checkpoints and
// latest_valid_checkpoint.
//
// Input format: the files' bytes joined by kPartSeparator, in the order
//   trainer_state.json, config.json, model.safetensors, optimizer.safetensors
// (missing trailing parts are files that do not exist). Checksums would stop
// nearly every mutation at verify, so the harness fills them in: the literal
// text "@FILES@" (with its quotes) in trainer_state.json is replaced by the
// true {"<file>": {"size": ..., "xxh64": ...}} map of the parts written.
// A state without the placeholder is taken as is, which fuzzes the map itself.
//
// A checkpoint that reads back must write back and read back identically.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.h"
#include "io/checkpoint.h"
#include "io/file_util.h"
#include "model/param_layout.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

constexpr const char* kFiles[] = {"trainer_state.json", "config.json", "model.safetensors",
                                  "optimizer.safetensors"};

std::vector<std::string_view> split_parts(std::string_view input) {
  std::vector<std::string_view> parts;
  for (;;) {
    const size_t at = input.find(fuzz::kPartSeparator);
    if (at == std::string_view::npos || parts.size() == 3) {
      parts.push_back(input);
      return parts;
    }
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + fuzz::kPartSeparator.size());
  }
}

void same_floats(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  fuzz::require(a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(),
                                                                   a.size() * 4) == 0),
                what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string parent = fuzz::scratch_dir() + "/run";
  const std::string dir = parent + "/" + checkpoint_name(1);
  std::error_code ec;
  fs::remove_all(parent, ec);
  fs::create_directories(dir);

  const std::vector<std::string_view> parts =
      split_parts(std::string_view(reinterpret_cast<const char*>(data), size));
  nlohmann::json files = nlohmann::json::object();
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string path = dir + "/" + kFiles[i];
    fuzz::write_bytes(path, parts[i].data(), parts[i].size());
    const FileDigest d = digest_file(path);
    files[kFiles[i]] = {{"size", d.size}, {"xxh64", hex64(d.xxh64)}};
  }
  std::string state(parts[0]);
  if (const size_t at = state.find("\"@FILES@\""); at != std::string::npos)
    state.replace(at, 9, files.dump());
  fuzz::write_bytes(dir + "/" + kFiles[0], state.data(), state.size());

  fuzz::run_reader([&] { verify_checkpoint(dir); });

  fuzz::run_reader([&] {
    const LoadedCheckpoint ck = read_checkpoint(dir);
    const ParamLayout layout(ck.config);
    fuzz::require(int64_t(ck.params.size()) == layout.total(), "params size != layout");
    fuzz::require(ck.m.size() == ck.v.size(), "only one AdamW moment loaded");
    fuzz::require(ck.m.empty() || int64_t(ck.m.size()) == layout.total(), "moments size");
    fuzz::require(ck.state.is_object() && !ck.state.contains("files"), "state keeps \"files\"");

    // Round trip: what was read must write and read back bit for bit.
    CheckpointContents c;
    c.config = &ck.config;
    c.layout = &layout;
    c.params = ck.params.data();
    c.m = ck.m.empty() ? nullptr : ck.m.data();
    c.v = ck.v.empty() ? nullptr : ck.v.data();
    c.state = ck.state;
    try {
      const std::string again_parent = fuzz::scratch_dir() + "/again";
      fs::remove_all(again_parent, ec);
      const LoadedCheckpoint back =
          read_checkpoint(write_checkpoint(again_parent, checkpoint_name(2), c));
      same_floats(ck.params, back.params, "params changed in a write/read round trip");
      same_floats(ck.m, back.m, "m changed in a write/read round trip");
      same_floats(ck.v, back.v, "v changed in a write/read round trip");
      fuzz::require(back.state == ck.state, "trainer state changed in a write/read round trip");
    } catch (const InputError& e) {
      fuzz::finding("a checkpoint Kiln read does not read back after writing", e.what());
    }
  });

  fuzz::run_reader([&] {
    const std::vector<CheckpointEntry> listed = list_checkpoints(parent);
    fuzz::require(listed.size() <= 1, "list_checkpoints invented a checkpoint");
    (void)latest_valid_checkpoint(parent, [](const std::string&) {});
  });
  return 0;
}
