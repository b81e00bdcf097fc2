#include "train/token_data.h"

#include <algorithm>
#include <memory>

#include "core/error.h"
#include "io/token_shards.h"

namespace kiln {

// Each path is a Kiln shard directory (or its manifest), a directory of .bin
// shards, or one shard file (flat uint16/uint32 or llm.c header); the readers
// validate headers, sizes and ids < vocab_size. Several paths are concatenated.
// --data takes the "train" split of a dataset, --val-data its "val" split; a
// plain file has no split and is used whole.
TokenStream open_token_data(const std::vector<std::string>& paths, int vocab_size, const std::string& flag) {
  const std::string split = flag == "--val-data" ? "val" : "train";
  auto datasets = std::make_shared<std::vector<TokenDataset>>();
  auto starts = std::make_shared<std::vector<int64_t>>();
  int64_t total = 0;
  for (const auto& path : paths) {
    DatasetOptions options;
    options.split = split;
    options.vocab_size = vocab_size;
    TokenDataset dataset = TokenDataset::open(path, options);
    if (dataset.size() == 0) {
      options.split = "all";  // a single file or an unsplit directory
      dataset = TokenDataset::open(path, options);
    }
    if (dataset.size() == 0) fail_input(path, "holds no tokens (" + flag + ")", "> 0 tokens", "0");
    starts->push_back(total);
    total += dataset.size();
    datasets->push_back(std::move(dataset));
  }
  TokenStream stream;
  stream.size = total;
  stream.read = [datasets, starts](int64_t offset, int64_t count, int32_t* out) {
    // Find the dataset holding `offset`, then read across boundaries.
    size_t i = size_t(std::upper_bound(starts->begin(), starts->end(), offset) - starts->begin()) - 1;
    while (count > 0) {
      const TokenDataset& d = (*datasets)[i];
      const int64_t local = offset - (*starts)[i];
      const int64_t take = std::min(count, d.size() - local);
      d.read(local, take, out);
      out += take;
      offset += take;
      count -= take;
      ++i;
    }
  };
  return stream;
}

std::vector<int32_t> used_token_ids(const TokenStream& stream, int vocab_size) {
  std::vector<char> seen(vocab_size, 0);
  std::vector<int32_t> chunk(1 << 16);
  for (int64_t offset = 0; offset < stream.size; offset += int64_t(chunk.size())) {
    const int64_t n = std::min<int64_t>(int64_t(chunk.size()), stream.size - offset);
    stream.read(offset, n, chunk.data());
    for (int64_t i = 0; i < n; ++i) seen[chunk[i]] = 1;
  }
  std::vector<int32_t> used;
  for (int i = 0; i < vocab_size; ++i)
    if (seen[i]) used.push_back(i);
  return used;
}

}  // namespace kiln
