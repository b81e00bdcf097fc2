// tokenizer.json "added_tokens": strings matched in the text before the
// normalizer and pre-tokenizer see it, each becoming its one id.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/hf_json.h"

namespace kiln::hf {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false, normalized = false, lstrip = false, rstrip = false, single_word = false;
};

// A stretch of text (id < 0) or one matched added token.
struct Segment {
  std::string_view text;
  int32_t id = -1;
  size_t offset = 0;  // where the stretch starts in the text given to split()
};

class AddedTokens {
 public:
  void read(const JsonAt& list);
  const std::vector<AddedToken>& all() const { return tokens_; }

  // Cuts `text` at the added tokens whose `normalized` flag equals
  // `normalized`: leftmost match first, the longest one there; special tokens
  // only when `parse_special`; lstrip/rstrip swallow the whitespace beside a
  // match, single_word needs non-word characters (or the ends) around it.
  void split(std::string_view text, bool normalized, bool parse_special,
             std::vector<Segment>& out) const;

 private:
  bool matches_at(std::string_view text, size_t pos, const AddedToken& t) const;

  std::vector<AddedToken> tokens_;
  // Per first byte: indices into tokens_, longest content first.
  std::array<std::vector<uint32_t>, 256> by_first_byte_;
};

}  // namespace kiln::hf
