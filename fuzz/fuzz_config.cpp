// libFuzzer target: model config JSON (Kiln's own field names or a Hugging
// Face config.json), through load_config_file / config_from_json.
//
// A config that loads must survive both writers: config_to_json and
// config_to_hf_json must read back to the same shape.
#include <cstdint>
#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "model/config.h"

using namespace kiln;

namespace {

bool same_shape(const ModelConfig& a, const ModelConfig& b) {
  return a.dim == b.dim && a.n_layers == b.n_layers && a.n_heads == b.n_heads &&
         a.n_kv_heads == b.n_kv_heads && a.head_dim == b.head_dim &&
         a.hidden_dim == b.hidden_dim && a.vocab_size == b.vocab_size &&
         a.max_seq_len == b.max_seq_len && a.norm_eps == b.norm_eps &&
         a.rope_theta == b.rope_theta && a.tie_embeddings == b.tie_embeddings;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("config.json", data, size);
  fuzz::run_reader([&] {
    const ModelConfig c = load_config_file(path);
    // Written configs must read back; a failure here is not bad input but a bug.
    try {
      const ModelConfig kiln_back = config_from_json(config_to_json(c), "kiln round trip");
      const ModelConfig hf_back = config_from_json(config_to_hf_json(c), "hf round trip");
      fuzz::require(same_shape(c, kiln_back), "config_to_json round trip changed the config");
      fuzz::require(same_shape(c, hf_back), "config_to_hf_json round trip changed the config");
      // The JSON text must also survive dump -> parse (e.g. no NaN written as null).
      const ModelConfig text_back =
          config_from_json(nlohmann::json::parse(config_to_hf_json(c).dump()), "text round trip");
      fuzz::require(same_shape(c, text_back), "config JSON text round trip changed the config");
    } catch (const InputError& e) {
      fuzz::finding("a loaded config does not read back", e.what());
    }
  });
  return 0;
}
