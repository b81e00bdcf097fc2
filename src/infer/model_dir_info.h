// What a model directory says about generating from it, beyond the weights:
// its tokenizer file, the ids that end a reply (config.json and
// generation_config.json "eos_token_id", an id or a list) and the sampling
// defaults of generation_config.json (do_sample, temperature, top_p, top_k,
// repetition_penalty). `kiln sample` and `kiln chat` start from these and let
// flags override them.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln {

struct ModelDirInfo {
  std::string tokenizer;           // dir/tokenizer.json, else dir/tokenizer.model; "" if none
  std::vector<int32_t> eos_ids;    // distinct, in file order (config.json first)
  std::optional<bool> do_sample;   // false: greedy
  std::optional<float> temperature, top_p, repetition_penalty;
  std::optional<int> top_k;
  std::optional<int> max_new_tokens;
};

// The files beside the weights that generation needs: tokenizer.json,
// tokenizer.model, tokenizer_config.json (the chat template, special tokens),
// chat_template.jinja, special_tokens_map.json, generation_config.json.
const std::vector<std::string>& generation_file_names();

// Copies those of `from_dir`'s generation files that `to_dir` does not hold yet
// (each through a temporary name, then renamed: never a half-written file, never
// an overwritten one). Returns the names copied. No-op when from_dir is not a
// directory. RuntimeError when a copy fails.
std::vector<std::string> copy_generation_files(const std::string& from_dir,
                                               const std::string& to_dir);

// Empty info for a path that is not a directory. InputError naming the file for
// JSON that does not parse or a field of the wrong type.
ModelDirInfo read_model_dir_info(const std::string& path);

}  // namespace kiln
