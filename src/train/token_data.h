// Opening the token data a run trains on: shard files or directories, in any
// format the shard readers know, validated against the model's vocabulary.
#pragma once
#include <string>
#include <vector>

#include "train/batch_source.h"

namespace kiln {

// Throws InputError naming `flag` and the path when the data is missing,
// malformed, or holds ids >= vocab_size.
TokenStream open_token_data(const std::vector<std::string>& paths, int vocab_size, const std::string& flag);

// Sorted distinct token ids present in the stream (for --compact-vocab).
std::vector<int32_t> used_token_ids(const TokenStream& stream, int vocab_size);

}  // namespace kiln
