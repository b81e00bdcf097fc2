// libFuzzer target: one token shard file (flat uint16/uint32, or llm.c's
// 256-int32 header layout) through inspect_shard and TokenDataset::open.
//
// Whatever opens must read back: every token of the dataset, each below the
// vocabulary the dataset reports.
#include <cstdint>
#include <vector>

#include "fuzz_common.h"
#include "io/token_shards.h"

using namespace kiln;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("tokens.bin", data, size);

  for (TokenDType dtype : {TokenDType::uint16, TokenDType::uint32}) {
    fuzz::run_reader([&] {
      const ShardInfo info = inspect_shard(path, dtype);
      fuzz::require(info.header_bytes + info.tokens * dtype_bytes(info.dtype) == size,
                    "inspect_shard: header + tokens does not add up to the file size");
    });
  }

  // Without a vocabulary (ids unchecked) and with a small one (ids checked).
  for (int64_t vocab : {int64_t(0), int64_t(300)}) {
    fuzz::run_reader([&] {
      DatasetOptions options;
      options.split = "all";
      options.vocab_size = vocab;
      const TokenDataset ds = TokenDataset::open(path, options);
      std::vector<int32_t> tokens(size_t(ds.size()));
      ds.read(0, ds.size(), tokens.data());
      for (int32_t t : tokens)
        fuzz::require(t >= 0 && t < ds.vocab_size(), "a token id at or above vocab_size");
      if (ds.size() > 2) {  // a read that starts inside the data
        std::vector<int32_t> tail(size_t(ds.size() - 1));
        ds.read(1, ds.size() - 1, tail.data());
        fuzz::require(tail[0] == tokens[1], "read at an offset disagrees with a full read");
      }
    });
  }
  return 0;
}
