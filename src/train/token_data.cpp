#include "train/token_data.h"

#include <algorithm>
#include <fstream>
#include <memory>

#include "core/error.h"

namespace kiln {

// Flat little-endian uint16 files (llama2.c data*.bin).
TokenStream open_token_data(const std::vector<std::string>& paths, int vocab_size, const std::string& flag) {
  auto tokens = std::make_shared<std::vector<uint16_t>>();
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) fail_input(path, "cannot open token data (" + flag + ")");
    const int64_t bytes = in.tellg();
    if (bytes % 2) fail_input(path, "token file has an odd byte count", "uint16 tokens", std::to_string(bytes) + " bytes");
    in.seekg(0);
    const size_t old = tokens->size();
    tokens->resize(old + bytes / 2);
    in.read(reinterpret_cast<char*>(tokens->data() + old), bytes);
  }
  for (size_t i = 0; i < tokens->size(); ++i)
    if ((*tokens)[i] >= vocab_size)
      fail_input(paths[0], "token id out of range at token " + std::to_string(i), "< " + std::to_string(vocab_size),
                 std::to_string((*tokens)[i]));
  TokenStream s;
  s.size = int64_t(tokens->size());
  s.read = [tokens](int64_t offset, int64_t count, int32_t* out) {
    for (int64_t i = 0; i < count; ++i) out[i] = (*tokens)[offset + i];
  };
  return s;
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
