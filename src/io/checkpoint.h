// Training checkpoints: one directory per checkpoint, written so that a crash
// at any moment leaves either the complete new checkpoint or none at all.
//
//   <parent>/step-000123/
//     model.safetensors      every parameter under its HF name, F32 (loadable by transformers)
//     config.json            HF LlamaConfig (config_to_hf_json)
//     optimizer.safetensors  AdamW moments, one F32 tensor per parameter:
//                            "m.<hf name>" (exp_avg) and "v.<hf name>" (exp_avg_sq),
//                            same shapes as the parameter (omitted when there are no moments)
//     trainer_state.json     the trainer's JSON (opaque here) plus
//                            "files": {"<file>": {"size": bytes, "xxh64": "<16 hex>"}}
//
// Writing: every file goes into <parent>/.tmp-<name>-<pid>, each fsynced;
// trainer_state.json (with the digests of the others) is written last; then the
// directory is renamed to <parent>/<name> and <parent> is fsynced. An existing
// <parent>/<name> is replaced only after the new one is complete.
// Reading verifies size and xxHash64 of every listed file before parsing any.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/param_layout.h"

namespace kiln {

// What the trainer hands over (non-owning). params/m/v are layout.total()
// floats each; m and v may both be null (no optimizer state yet).
struct CheckpointContents {
  const ModelConfig* config = nullptr;
  const ParamLayout* layout = nullptr;
  const float* params = nullptr;
  const float* m = nullptr;                         // AdamW first moment  (exp_avg)
  const float* v = nullptr;                         // AdamW second moment (exp_avg_sq)
  nlohmann::json state = nlohmann::json::object();  // trainer state; must be an object
};

struct LoadedCheckpoint {
  std::string dir;
  ModelConfig config;
  std::vector<float> params;
  std::vector<float> m, v;  // empty when the checkpoint has no optimizer state
  nlohmann::json state;     // the trainer's JSON as written (without "files")
};

struct CheckpointEntry {
  std::string path;  // <parent>/step-000123
  int64_t step = 0;
};

// "step-000123" (at least six digits).
std::string checkpoint_name(int64_t step);

// Writes <parent>/<name> atomically (see above); creates parent if needed.
// Returns the path of the checkpoint directory.
std::string write_checkpoint(const std::string& parent, const std::string& name,
                             const CheckpointContents& contents);

// Checks sizes and xxHash64 of every file trainer_state.json lists (InputError
// naming the file on any mismatch or a missing file). Does not parse tensors.
void verify_checkpoint(const std::string& dir);

// verify_checkpoint, then loads config.json (HF or Kiln names), the weights,
// the optimizer moments and the trainer state.
LoadedCheckpoint read_checkpoint(const std::string& dir);

// Checkpoint directories named step-<digits> directly under parent that hold a
// trainer_state.json, sorted by step (oldest first). Temp dirs are ignored.
// A missing parent gives an empty list.
std::vector<CheckpointEntry> list_checkpoints(const std::string& parent);

// The newest checkpoint that reads back intact. A damaged one is reported
// through warn (a one-line message naming it and the problem) and the next
// older one is tried. nullopt when none is usable.
std::optional<LoadedCheckpoint> latest_valid_checkpoint(
    const std::string& parent, const std::function<void(const std::string&)>& warn);

// Deletes the temporary directories (.tmp-*-<pid>) that checkpoint writers killed
// mid-write left under parent; a directory of a live process is kept. A finished
// checkpoint that was moved aside (.tmp-old-<name>-<pid>) and whose replacement never
// landed is renamed back to <name> instead. Returns the deleted paths.
std::vector<std::string> remove_stale_temp_dirs(const std::string& parent);

// Deletes the oldest checkpoints so that at most `keep` remain; the newest is
// never deleted (keep < 1 is treated as 1). Returns the deleted paths.
std::vector<std::string> rotate_checkpoints(const std::string& parent, int keep);

}  // namespace kiln
