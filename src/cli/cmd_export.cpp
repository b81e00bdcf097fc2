// kiln export: a trained model to llama2.c's .bin (v0, readable by run.c), a
// Hugging Face directory (model.safetensors + config.json) or a llama.cpp GGUF
// file (--type f32|f16|bf16|q8_0, with the tokenizer and chat template).
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/error.h"
#include "infer/model_dir_info.h"
#include "io/file_util.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/llama2c_model.h"
#include "io/model_safetensors.h"
#include "model/param_layout.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/gguf_vocab.h"
#include "train/model_source.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  std::string model, format, out, type = "f32", tokenizer;
};

GgmlType gguf_type(const std::string& name) {
  if (name == "f32") return GgmlType::f32;
  if (name == "f16") return GgmlType::f16;
  if (name == "bf16") return GgmlType::bf16;
  if (name == "q8_0") return GgmlType::q8_0;
  fail_input("--type", "unknown GGUF tensor type", "f32, f16, bf16 or q8_0", name);
}

bool has_chat_template(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir / "chat_template.jinja", ec)) return true;
  const fs::path config = dir / "tokenizer_config.json";
  if (!fs::is_regular_file(config, ec)) return false;
  const auto j = nlohmann::json::parse(read_file(config.string(), 64u << 20), nullptr, false);
  return j.is_object() && j.contains("chat_template");  // load_chat_template reports bad JSON
}

// The tokenizer and chat template metadata: from --tokenizer, else the model
// directory's (a run keeps its tokenizer files), else the one recorded with the
// checkpoint; a .gguf source passes its own tokenizer.* keys on.
std::vector<std::pair<std::string, GgufValue>> gguf_extra(const ExportArgs& a, const ModelSource& source,
                                                          const std::string& from) {
  std::vector<std::pair<std::string, GgufValue>> extra;
  extra.emplace_back("general.name", GgufValue::string(fs::path(a.out).stem().string()));
  std::string path = a.tokenizer;
  if (path.empty()) path = read_model_dir_info(from).tokenizer;
  if (path.empty()) path = source.tokenizer;
  if (path.empty() && is_gguf_file(a.model)) {
    const GgufReader r(a.model);
    for (const auto& [key, value] : r.metadata())
      if (key.rfind("tokenizer.", 0) == 0) extra.emplace_back(key, value);
    return extra;
  }
  if (path.empty())
    fail_input(a.model, "no tokenizer with this model (llama.cpp needs one in the GGUF file)",
               "--tokenizer PATH (tokenizer.json, .model or tokenizer.bin)", "none");
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(path);
  for (auto& kv : gguf_tokenizer_metadata(*tokenizer, source.config.vocab_size, source.config.model_type))
    extra.push_back(std::move(kv));
  // The chat template of the tokenizer's directory (chat_template.jinja or tokenizer_config.json).
  const fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  if (has_chat_template(dir))
    extra.emplace_back("tokenizer.chat_template",
                       GgufValue::string(load_chat_template(dir.string()).chat_template.source()));
  return extra;
}

int run_export(const ExportArgs& a) {
  if (a.format != "llama2c" && a.format != "hf" && a.format != "gguf")
    fail_input("--format", "unknown export format", "llama2c, hf or gguf", a.format);
  const GgmlType type = gguf_type(a.type);
  if (a.format != "gguf" && a.type != "f32")
    fail_input("--type", "applies to --format gguf only", "f32 (the default)", a.type);
  ModelSource source = resolve_trained_model(a.model);
  ParamLayout layout(source.config);
  // The run (or the run holding the checkpoint) whose tokenizer and generation files go along.
  const std::string from = source.checkpoint_dir.empty()
                               ? a.model
                               : fs::path(source.checkpoint_dir).parent_path().string();
  if (a.format == "llama2c") {
    save_llama2c_v0(a.out, source.config, layout, source.params.data());
  } else if (a.format == "gguf") {
    gguf_architecture(source.config, a.model);  // before the tokenizer is read
    save_gguf_model(a.out, source.config, layout, source.params.data(), type,
                    gguf_extra(a, source, from));
  } else {
    save_hf_model_dir(a.out, source.config, layout, source.params.data());
    copy_generation_files(from, a.out);
  }
  std::printf("kiln: exported %s (%s%s) to %s\n", source.config.name.c_str(), a.format.c_str(),
              a.format == "gguf" ? (" " + a.type).c_str() : "", a.out.c_str());
  return 0;
}

RegisterCommand export_command({"export", "Export a trained model (llama2.c .bin, Hugging Face dir or GGUF)",
                                [](CLI::App& sub) -> std::function<int()> {
                                  auto a = std::make_shared<ExportArgs>();
                                  sub.add_option("--model", a->model, "Checkpoint or run directory, HF dir, model.bin or .gguf")->required();
                                  sub.add_option("--format", a->format, "llama2c | hf | gguf")->required();
                                  sub.add_option("--out", a->out, "Output .bin / .gguf file or directory")->required();
                                  sub.add_option("--type", a->type, "GGUF tensor type: f32 | f16 | bf16 | q8_0 (default f32)");
                                  sub.add_option("--tokenizer", a->tokenizer,
                                                 "Tokenizer for the GGUF file (default: the model's own)");
                                  return [a]() { return run_export(*a); };
                                }});

}  // namespace
}  // namespace kiln::cli
