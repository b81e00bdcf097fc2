// tokenizer.json "model" of type BPE: vocabulary, ranked merges and the
// per-word merge loop (lowest rank first, leftmost on ties, as the library).
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/hf_json.h"

namespace kiln::hf {

// Hashing std::string keys by string_view, so lookups need no allocation.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // Reads `spec` (the "model" object). InputError naming the path for a
  // merge of unknown tokens, dropout, or anything malformed.
  explicit BpeModel(const JsonAt& spec);

  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  const TokenMap& vocab() const { return vocab_; }
  int32_t unk_id() const { return unk_id_; }
  bool byte_fallback() const { return byte_fallback_; }

 private:
  struct Merge {
    uint64_t key = kEmpty;  // (left id << 32) | right id
    int32_t rank = 0, result = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  void read_vocab(const JsonAt& vocab);
  void read_merges(const JsonAt& merges);
  void add_merge(const std::string& a, const std::string& b, int32_t rank, const JsonAt& where);
  const Merge* find_merge(int32_t left, int32_t right) const;
  void initial_symbols(std::string_view word, std::vector<int32_t>& ids) const;
  void merge(std::vector<int32_t>& ids) const;

  TokenMap vocab_;
  std::vector<Merge> merges_;  // open addressing, power-of-two size
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  std::string prefix_, suffix_;  // continuing_subword_prefix, end_of_word_suffix
  std::array<int32_t, 256> byte_ids_{};

  // Recently seen words and their ids, bounded (a shard is cleared when full);
  // sharded by the word's hash so data-prep threads rarely wait on each other.
  struct CacheShard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> words;
  };
  static constexpr size_t kCacheShards = 16;
  mutable std::array<CacheShard, kCacheShards> cache_;
};

}  // namespace kiln::hf
