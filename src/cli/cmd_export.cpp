// kiln export: a trained model to llama2.c's .bin (v0, readable by run.c) or a
// Hugging Face directory (model.safetensors + config.json).
#include <cstdio>
#include <filesystem>

#include "cli/command.h"
#include "core/error.h"
#include "infer/model_dir_info.h"
#include "io/llama2c_model.h"
#include "io/model_safetensors.h"
#include "model/param_layout.h"
#include "train/model_source.h"

namespace kiln::cli {
namespace {

struct ExportArgs {
  std::string model, format, out;
};

int run_export(const ExportArgs& a) {
  if (a.format != "llama2c" && a.format != "hf")
    fail_input("--format", "unknown export format", "llama2c or hf", a.format);
  ModelSource source = resolve_trained_model(a.model);
  ParamLayout layout(source.config);
  if (a.format == "llama2c") {
    save_llama2c_v0(a.out, source.config, layout, source.params.data());
  } else {
    save_hf_model_dir(a.out, source.config, layout, source.params.data());
    // The tokenizer, chat template and generation_config.json of the run (or of the
    // run holding the checkpoint) go along, so the directory loads as a whole model.
    const std::string from = source.checkpoint_dir.empty()
                                 ? a.model
                                 : std::filesystem::path(source.checkpoint_dir).parent_path().string();
    copy_generation_files(from, a.out);
  }
  std::printf("kiln: exported %s (%s) to %s\n", source.config.name.c_str(), a.format.c_str(), a.out.c_str());
  return 0;
}

RegisterCommand export_command({"export", "Export a trained model (llama2.c .bin or Hugging Face dir)",
                                [](CLI::App& sub) -> std::function<int()> {
                                  auto a = std::make_shared<ExportArgs>();
                                  sub.add_option("--model", a->model, "Checkpoint or run directory, or model.bin")->required();
                                  sub.add_option("--format", a->format, "llama2c | hf")->required();
                                  sub.add_option("--out", a->out, "Output .bin file or directory")->required();
                                  return [a]() { return run_export(*a); };
                                }});

}  // namespace
}  // namespace kiln::cli
