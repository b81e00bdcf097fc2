// A PCRE2 regex compiled once (UTF + Unicode properties, JIT when the platform
// has it) for the Split pre-tokenizer and the Replace normalizer.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/hf_json.h"

namespace kiln::hf {

class Regex {
 public:
  // InputError "<file>: <where>: invalid regex ..." when PCRE2 rejects it.
  Regex(const std::string& pattern, const std::string& file, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping match in valid UTF-8 `text`, as [begin, end) byte
  // ranges, left to right; an empty match advances one character.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A Split pre-tokenizer or Replace normalizer pattern: {"String": s} sets
// `literal` and returns nullptr; {"Regex": r} returns the compiled regex.
std::unique_ptr<Regex> parse_pattern(const JsonAt& pattern, std::string& literal);

}  // namespace kiln::hf
