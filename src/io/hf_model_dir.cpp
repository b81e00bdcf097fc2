#include "io/hf_model_dir.h"

#include <sys/mman.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/model_safetensors.h"
#include "io/safetensors.h"
#include "model/param_layout.h"

namespace fs = std::filesystem;

namespace kiln {
namespace {

constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";

// tensor name -> shard file name (relative to the directory).
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  std::ifstream in(index_path);
  if (!in) fail_input(index_path, "cannot open the shard index");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail_input(index_path, std::string("shard index is not valid JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail_input(index_path, "shard index has no weight_map object", "{\"weight_map\": {...}}",
               j.dump().substr(0, 80));
  std::map<std::string, std::string> map;
  for (const auto& [tensor, file] : j["weight_map"].items()) {
    if (!file.is_string() || file.get<std::string>().empty() ||
        file.get<std::string>().find('/') != std::string::npos)
      fail_input(index_path, "weight_map entry for tensor \"" + tensor + "\" is not a file name",
                 "a shard file name in this directory", file.dump());
    map[tensor] = file.get<std::string>();
  }
  return map;
}

// The opened shards and which one holds each tensor.
struct Shards {
  std::map<std::string, std::unique_ptr<SafetensorsReader>> readers;  // file name -> reader
  std::map<std::string, std::string> where;                           // tensor -> file name
  std::string listing;  // the file that lists the tensors: the index or model.safetensors
};

Shards open_shards(const std::string& dir) {
  Shards s;
  const fs::path root(dir);
  if (fs::exists(root / kIndex)) {
    s.listing = (root / kIndex).string();
    s.where = read_weight_map((root / kIndex).string());
    for (const auto& [tensor, file] : s.where) {
      if (s.readers.count(file)) continue;
      const std::string path = (root / file).string();
      if (!fs::is_regular_file(path))
        fail_input(path,
                   "shard listed in " + std::string(kIndex) + " (for tensor \"" + tensor +
                       "\") is missing",
                   "the shard file", "nothing");
      s.readers[file] = std::make_unique<SafetensorsReader>(path);
    }
  } else {
    const std::string path = (root / kSingle).string();
    s.listing = path;
    s.readers[kSingle] = std::make_unique<SafetensorsReader>(path);
    for (const SafetensorsEntry& e : s.readers[kSingle]->tensors()) s.where[e.name] = kSingle;
  }
  // A shard may not hold a tensor the index does not list (it would be silently ignored).
  for (const auto& [file, reader] : s.readers)
    for (const SafetensorsEntry& e : reader->tensors()) {
      auto it = s.where.find(e.name);
      if (it == s.where.end() || it->second != file)
        fail_input(
            reader->path(),
            "tensor \"" + e.name + "\" is not listed for this file in " + std::string(kIndex),
            it == s.where.end() ? "listed" : it->second, "not listed");
    }
  return s;
}

// Reads one expected tensor into dst after checking it exists in its shard with
// the config's shape; its values must be finite.
void read_tensor(const Shards& s, const ParamInfo& p, float* dst) {
  auto it = s.where.find(p.name);
  if (it == s.where.end()) {
    std::string hint;
    if (p.name == "lm_head.weight")
      hint = " (config.json says tie_word_embeddings = false; a tied model has no lm_head.weight)";
    fail_input(s.listing, "tensor \"" + p.name + "\" is missing" + hint, shape_string(p.shape),
               "nothing");
  }
  const SafetensorsReader& reader = *s.readers.at(it->second);
  const SafetensorsEntry* e = reader.find(p.name);
  if (!e)
    fail_input(reader.path(),
               "tensor \"" + p.name + "\" is listed in " + std::string(kIndex) +
                   " for this shard but missing from it",
               shape_string(p.shape), "nothing");
  if (e->shape != p.shape)
    fail_input(reader.path(), "tensor \"" + p.name + "\" has the wrong shape for config.json",
               shape_string(p.shape), shape_string(e->shape));
  reader.read_f32(p.name, dst, p.numel());
  check_finite(reader.path(), p.name, dst, p.numel());
}

// Every tensor of the files must be one of the layout's. A tied model may still
// carry lm_head.weight (some exporters write it): accepted only when it equals the
// embedding exactly.
void check_no_extra(const Shards& s, const ModelConfig& c, const ParamLayout& layout,
                    const float* params) {
  for (const auto& [tensor, file] : s.where) {
    if (layout.find(tensor) || tensor.ends_with("rotary_emb.inv_freq")) continue;
    const SafetensorsReader& reader = *s.readers.at(file);
    const SafetensorsEntry* e = reader.find(tensor);
    if (tensor == "lm_head.weight" && c.tie_embeddings && e) {
      const ParamInfo& embed = *layout.find("model.embed_tokens.weight");
      if (e->shape == embed.shape) {
        const std::vector<float> head = reader.read_f32(tensor);
        if (std::equal(head.begin(), head.end(), params + embed.offset)) continue;
      }
      fail_input(reader.path(),
                 "tensor \"lm_head.weight\" differs from the embedding, but config.json says "
                 "tie_word_embeddings = true",
                 "no lm_head.weight, or one equal to model.embed_tokens.weight",
                 "a separate classifier");
    }
    fail_input(reader.path(), "unexpected tensor \"" + tensor + "\"",
               "only the tensors of config.json's model",
               tensor + (e ? " " + shape_string(e->shape) : std::string()));
  }
}

// A zeroed buffer of n floats backed by transparent huge pages where the kernel
// allows it: the buffer is reserved (not yet touched), advised, then filled. For a
// Qwen2.5-0.5B-sized model (2 GB of fp32) first-touch page faults with 4 KiB pages
// were the largest part of the load time (7 s of a bare zero fill on the test VM,
// 3.7 s with huge pages).
void allocate_zeroed(std::vector<float>* v, size_t n) {
  v->reserve(n);
  const uintptr_t huge = uintptr_t(2) << 20;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(v->data()) + huge - 1) & ~(huge - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(v->data() + n) & ~(huge - 1);
#ifdef MADV_HUGEPAGE
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // a hint
#endif
  v->resize(n);
}

}  // namespace

bool is_hf_model_dir(const std::string& dir) {
  std::error_code ec;
  const fs::path root(dir);
  return fs::is_directory(root, ec) && fs::is_regular_file(root / "config.json", ec) &&
         (fs::is_regular_file(root / kSingle, ec) || fs::is_regular_file(root / kIndex, ec));
}

HfModel load_hf_model_dir(const std::string& dir) {
  HfModel m;
  m.config = load_config_file((fs::path(dir) / "config.json").string());
  const ParamLayout layout(m.config);
  const Shards shards = open_shards(dir);
  allocate_zeroed(&m.params, size_t(layout.total()));
  for (const ParamInfo& p : layout.params()) read_tensor(shards, p, m.params.data() + p.offset);
  check_no_extra(shards, m.config, layout, m.params.data());
  return m;
}

}  // namespace kiln
