#include "io/atomic_file.h"
#include "io/model_safetensors.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"

namespace kiln {

void check_finite(const std::string& where, const std::string& tensor, const float* data,
                  int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(data[i]))
      fail_input(
          where,
          "tensor \"" + tensor + "\" holds a non-finite value at element " + std::to_string(i),
          "finite numbers", std::to_string(data[i]));
  }
}

FileDigest save_model_safetensors(const std::string& path, const ModelConfig& config,
                                  const ParamLayout& layout, const float* params) {
  std::vector<SafetensorsTensorRef> tensors;
  for (const ParamInfo& p : layout.params())
    tensors.push_back({p.name, DType::f32, p.shape, params + p.offset});
  // transformers refuses a safetensors file whose metadata lacks format=pt.
  return write_safetensors(path, tensors, {{"format", "pt"}, {"producer", "kiln"}});
}

void load_model_safetensors(const std::string& path, const ModelConfig& config,
                            const ParamLayout& layout, float* params) {
  SafetensorsReader reader(path);
  for (const ParamInfo& p : layout.params()) {
    const SafetensorsEntry* e = reader.find(p.name);
    if (!e) {
      std::string hint;
      if (p.name == "lm_head.weight")
        hint = " (the config says tie_embeddings = false; a tied model has no lm_head.weight)";
      fail_input(path, "tensor \"" + p.name + "\" is missing" + hint, shape_string(p.shape),
                 "nothing");
    }
    if (e->shape != p.shape)
      fail_input(path, "tensor \"" + p.name + "\" has the wrong shape for the model config",
                 shape_string(p.shape), shape_string(e->shape));
    reader.read_f32(p.name, params + p.offset, p.numel());
    check_finite(path, p.name, params + p.offset, p.numel());
  }
  for (const SafetensorsEntry& e : reader.tensors()) {
    if (layout.find(e.name) || e.name.ends_with("rotary_emb.inv_freq")) continue;
    std::string hint;
    if (e.name == "lm_head.weight")
      hint = " (the config says tie_embeddings = true, but the file has a separate classifier)";
    fail_input(path, "unexpected tensor \"" + e.name + "\"" + hint, "only the config's tensors",
               e.name + " " + shape_string(e.shape));
  }
}

FileDigest save_hf_config(const std::string& path, const ModelConfig& config) {
  return write_file_atomic(path, config_to_hf_json(config).dump(2) + "\n");
}

void save_hf_model_dir(const std::string& dir, const ModelConfig& config, const ParamLayout& layout,
                       const float* params) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail_runtime(dir, "cannot create directory: " + ec.message());
  save_model_safetensors((std::filesystem::path(dir) / "model.safetensors").string(), config,
                         layout, params);
  save_hf_config((std::filesystem::path(dir) / "config.json").string(), config);
}

}  // namespace kiln
