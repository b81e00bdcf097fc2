// libFuzzer target: llama2.c model files (.bin v0 legacy, v1, v2 Q8_0).
//
// is_llama2c_file() promises never to throw; load_llama2c() promises an
// InputError for anything it cannot import. A file it imports must describe a
// valid config whose parameters are all finite.
#include <cmath>
#include <cstdint>

#include "fuzz_common.h"
#include "io/llama2c_model.h"
#include "model/param_layout.h"

using namespace kiln;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("model.bin", data, size);

  try {
    (void)is_llama2c_file(path);
  } catch (const std::exception& e) {
    fuzz::finding("is_llama2c_file threw", e.what());
  }

  fuzz::run_reader([&] {
    const ImportedModel model = load_llama2c(path);
    try {
      model.config.validate("imported");
    } catch (const InputError& e) {
      fuzz::finding("load_llama2c returned an invalid config", e.what());
    }
    fuzz::require(int64_t(model.params.size()) == ParamLayout(model.config).total(),
                  "imported parameter count disagrees with the config");
    for (float x : model.params) fuzz::require(std::isfinite(x), "non-finite parameter imported");
    fuzz::require(model.format_version >= 0 && model.format_version <= 2, "unknown version");
  });
  return 0;
}
