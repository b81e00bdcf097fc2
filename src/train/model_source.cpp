#include "train/model_source.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/gguf_model.h"
#include "io/hf_model_dir.h"
#include "io/llama2c_model.h"

namespace fs = std::filesystem;

namespace kiln {
namespace {

void from_checkpoint(LoadedCheckpoint&& ckpt, ModelSource* source) {
  source->config = ckpt.config;
  source->params = std::move(ckpt.params);
  source->description = "weights from " + ckpt.dir;
  source->checkpoint_dir = ckpt.dir;
  if (ckpt.state.is_object()) source->tokenizer = ckpt.state.value("tokenizer", std::string());
}

}  // namespace

ModelSource resolve_model(const std::string& spec) {
  ModelSource source;
  std::error_code ec;
  if (fs::is_directory(spec, ec)) {
    if (fs::exists(fs::path(spec) / "trainer_state.json")) {
      from_checkpoint(read_checkpoint(spec), &source);
      return source;
    }
    if (is_hf_model_dir(spec)) {  // config.json + model.safetensors (or its shard index)
      HfModel hf = load_hf_model_dir(spec);
      source.config = hf.config;
      source.params = std::move(hf.params);
      source.description = "Hugging Face " + hf.config.model_type + " weights from " + spec;
      return source;
    }
    auto ckpt = latest_valid_checkpoint(
        spec, [](const std::string& w) { std::fprintf(stderr, "kiln: warning: %s\n", w.c_str()); });
    if (!ckpt)
      fail_input(spec, "directory holds no complete checkpoint",
                 "a checkpoint directory or a run directory with step-* checkpoints", "none");
    from_checkpoint(std::move(*ckpt), &source);
    return source;
  }
  if (fs::is_regular_file(spec, ec) && is_llama2c_file(spec)) {
    ImportedModel imported = load_llama2c(spec);
    source.config = imported.config;
    source.params = std::move(imported.params);
    source.description = "weights from llama2.c " + spec;
    return source;
  }
  if (fs::is_regular_file(spec, ec) && (is_gguf_file(spec) || spec.ends_with(".gguf"))) {
    // A .gguf without the magic gets load_gguf_model's message about it.
    GgufModel gguf = load_gguf_model(spec);
    source.config = gguf.config;
    source.params = std::move(gguf.params);
    source.description = "GGUF " + gguf.config.model_type + " weights from " + spec;
    return source;
  }
  if (!fs::exists(spec, ec) || spec.ends_with(".json")) {
    source.config = resolve_config(spec);
    source.description = "fresh weights (" + source.config.name + ")";
    return source;
  }
  fail_input(spec, "not a model this kiln can read",
             "a preset, a config .json, a llama2.c .bin, a .gguf, a Hugging Face model directory, "
             "a checkpoint or run directory",
             "another file");
}

ModelSource resolve_trained_model(const std::string& spec) {
  ModelSource source = resolve_model(spec);
  if (source.params.empty())
    fail_input(spec, "has no weights",
               "a checkpoint, run directory, Hugging Face model directory, llama2.c .bin or .gguf",
               "a model config");
  return source;
}

}  // namespace kiln
