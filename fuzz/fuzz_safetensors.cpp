// libFuzzer target: safetensors files (SafetensorsReader and the model-weights
// loader on top of it).
//
// Every tensor the reader accepts is read back raw and, for F32/BF16/F16, as
// fp32; the bytes are then loaded as the weights of the tiny corpus model
// (tied and untied), which exercises the shape/name/finiteness checks.
#include <cstdint>
#include <vector>

#include "fuzz_common.h"
#include "io/model_safetensors.h"
#include "io/safetensors.h"
#include "model/param_layout.h"

using namespace kiln;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("input.safetensors", data, size);

  fuzz::run_reader([&] {
    SafetensorsReader reader(path);
    uint64_t covered = 0;
    for (const SafetensorsEntry& e : reader.tensors()) {
      // The reader promised: offsets inside the file, bytes == numel * dtype size.
      fuzz::require(e.begin <= e.end, "entry with begin > end accepted");
      fuzz::require(uint64_t(e.numel()) * safetensors_dtype_size(e.dtype) == e.end - e.begin,
                    "entry byte range disagrees with its shape");
      covered += e.end - e.begin;
      std::vector<char> raw(e.end - e.begin);
      reader.read_raw(e, raw.data());
      if (e.dtype == "F32" || e.dtype == "BF16" || e.dtype == "F16") {
        const std::vector<float> values = reader.read_f32(e.name);
        fuzz::require(int64_t(values.size()) == e.numel(), "read_f32 returned a wrong count");
      }
      fuzz::require(reader.find(e.name) != nullptr, "listed tensor not found by name");
    }
    fuzz::require(8 + covered <= size, "tensors claim more bytes than the file has");
  });

  for (bool tied : {true, false}) {
    fuzz::run_reader([&] {
      const ModelConfig config = fuzz::tiny_config(tied);
      const ParamLayout layout(config);
      std::vector<float> params(size_t(layout.total()));
      load_model_safetensors(path, config, layout, params.data());
    });
  }
  return 0;
}
