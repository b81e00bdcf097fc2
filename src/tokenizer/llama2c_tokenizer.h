// llama2.c's tokenizer.bin, encoded by Kiln's own BPE.
//
// The file holds no normaliser spec and no piece types, so Llama's conventions
// are assumed: ids 0/1/2 are <unk>/<s>/</s>, pieces spelled "<0xAB>" are byte
// pieces (byte fallback is on when all 256 exist), text gets a dummy-prefix
// space and no other normalisation.
#pragma once
#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tokenizer/tokenizer.h"

namespace kiln {

class Llama2cTokenizer final : public Tokenizer {
 public:
  // Parses `bytes` as tokenizer.bin. Returns nullptr and sets `*problem` when
  // the bytes are not a well-formed tokenizer.bin (every byte must be accounted for).
  static std::unique_ptr<Llama2cTokenizer> parse(const std::string& path, const std::string& bytes,
                                                 std::string* problem);

  std::vector<int32_t> encode(std::string_view text, bool bos, bool eos) const override;
  std::string decode(std::span<const int32_t> ids) const override;

 private:
  Llama2cTokenizer() = default;
  void build_lookup();

  // Normal pieces (the only ones BPE may produce by merging) -> id. Keys view
  // into the vocabulary table, which never changes after loading.
  std::unordered_map<std::string_view, int32_t> merge_lookup_;
  std::array<int32_t, 256> byte_ids_{};
};

}  // namespace kiln
