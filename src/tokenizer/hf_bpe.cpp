// BPE model: vocabulary and merges from tokenizer.json, and the merge loop.
#include "tokenizer/hf_bpe.h"

#include <algorithm>
#include <cstdio>

#include "tokenizer/hf_byte_level.h"

namespace kiln::hf {
namespace {
constexpr size_t kCacheWords = 1 << 16;
constexpr size_t kCacheWordBytes = 256;  // longer words are rare; not cached

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

size_t mix(uint64_t key) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdULL;
  key ^= key >> 33;
  return static_cast<size_t>(key);
}
}  // namespace

BpeModel::BpeModel(const JsonAt& spec) {
  if (spec.has("dropout")) spec["dropout"].unsupported();
  byte_fallback_ = spec.bool_or("byte_fallback", false);
  fuse_unk_ = spec.bool_or("fuse_unk", false);
  ignore_merges_ = spec.bool_or("ignore_merges", false);
  prefix_ = spec.str_or("continuing_subword_prefix", "");
  suffix_ = spec.str_or("end_of_word_suffix", "");
  read_vocab(spec["vocab"]);
  if (spec.has("unk_token")) {
    const JsonAt unk = spec["unk_token"];
    auto it = vocab_.find(unk.str());
    if (it == vocab_.end()) unk.fail("is not in model.vocab", "", unk.value().dump());
    unk_id_ = it->second;
  }
  byte_ids_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = vocab_.find(std::string_view(name));
    if (it != vocab_.end()) byte_ids_[static_cast<size_t>(b)] = it->second;
  }
  read_merges(spec["merges"]);
}

void BpeModel::read_vocab(const JsonAt& vocab) {
  vocab.expect_object();
  vocab_.reserve(vocab.size());
  for (auto it = vocab.value().begin(); it != vocab.value().end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX)
      vocab.fail("token " + nlohmann::json(it.key()).dump() + " has a bad id", "integer >= 0",
                 it->dump());
    vocab_.emplace(it.key(), static_cast<int32_t>(it->get<int64_t>()));
  }
}

void BpeModel::read_merges(const JsonAt& merges) {
  size_t capacity = 16;
  const size_t n = merges.is_null() ? 0 : merges.size();
  while (capacity < n * 2) capacity *= 2;
  merges_.assign(capacity, Merge{});
  if (merges.is_null()) return;
  merges.expect_array();
  for (size_t i = 0; i < n; ++i) {
    const JsonAt m = merges.at(i);
    // Two forms: "a b" (older files) and ["a", "b"] (tokenizers >= 0.20).
    if (m.value().is_string()) {
      const std::string s = m.str();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        m.fail("a merge needs two tokens separated by one space", "\"a b\"", m.value().dump());
      add_merge(s.substr(0, space), s.substr(space + 1), static_cast<int32_t>(i), m);
    } else if (m.value().is_array() && m.size() == 2) {
      add_merge(m.at(0).str(), m.at(1).str(), static_cast<int32_t>(i), m);
    } else {
      m.fail("bad merge", "\"a b\" or [\"a\", \"b\"]", m.value().dump());
    }
  }
}

void BpeModel::add_merge(const std::string& a, const std::string& b, int32_t rank,
                         const JsonAt& where) {
  auto token = [&](const std::string& t) {
    auto it = vocab_.find(t);
    if (it == vocab_.end())
      where.fail("merge names a token that is not in model.vocab", "", nlohmann::json(t).dump());
    return it->second;
  };
  const int32_t left = token(a), right = token(b);
  // The library drops the subword prefix from the right part of the merged token.
  const size_t cut = std::min(prefix_.size(), b.size());
  const int32_t result = token(a + b.substr(cut));
  const uint64_t key = pair_key(left, right);
  const size_t mask = merges_.size() - 1;
  for (size_t slot = mix(key) & mask;; slot = (slot + 1) & mask) {
    if (merges_[slot].key == key) return;  // a repeated merge keeps its first rank
    if (merges_[slot].key == kEmpty) {
      merges_[slot] = Merge{key, rank, result};
      return;
    }
  }
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
  const uint64_t key = pair_key(left, right);
  const size_t mask = merges_.size() - 1;
  for (size_t slot = mix(key) & mask;; slot = (slot + 1) & mask) {
    if (merges_[slot].key == key) return &merges_[slot];
    if (merges_[slot].key == kEmpty) return nullptr;
  }
}

// One symbol per character (with the subword prefix/suffix where set); a
// character outside the vocabulary becomes its <0xAB> bytes, or unk, or
// nothing, in that order of preference (the library's order).
void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& ids) const {
  thread_local std::string scratch;
  bool last_unk = false;
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t start = pos;
    next_code_point(word, pos);
    std::string_view ch = word.substr(start, pos - start);
    if ((start > 0 && !prefix_.empty()) || (pos == word.size() && !suffix_.empty())) {
      scratch.assign(start > 0 ? prefix_ : "").append(ch);
      if (pos == word.size()) scratch.append(suffix_);
      ch = scratch;
    }
    auto it = vocab_.find(ch);
    if (it != vocab_.end()) {
      ids.push_back(it->second);
      last_unk = false;
      continue;
    }
    if (byte_fallback_) {
      const std::string_view raw = word.substr(start, pos - start);
      bool all = true;
      for (char c : raw) all &= byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : raw) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        last_unk = false;
        continue;
      }
    }
    if (unk_id_ >= 0 && !(fuse_unk_ && last_unk)) ids.push_back(unk_id_);
    last_unk = unk_id_ >= 0;
  }
}

namespace {
struct Candidate {
  int32_t rank, pos;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};
}  // namespace

// Merges the lowest-ranked adjacent pair until none is left: a doubly linked
// list over `ids` and a min-heap of candidate pairs, stale ones skipped.
void BpeModel::merge(std::vector<int32_t>& ids) const {
  const int32_t n = static_cast<int32_t>(ids.size());
  if (n < 2) return;
  thread_local std::vector<int32_t> next, prev;
  thread_local std::vector<Candidate> heap;
  next.resize(ids.size());
  prev.resize(ids.size());
  heap.clear();
  const auto greater = std::greater<Candidate>();
  auto push = [&](int32_t pos) {
    if (pos < 0 || next[size_t(pos)] < 0) return;
    if (const Merge* m = find_merge(ids[size_t(pos)], ids[size_t(next[size_t(pos)])])) {
      heap.push_back({m->rank, pos});
      std::push_heap(heap.begin(), heap.end(), greater);
    }
  };
  for (int32_t i = 0; i < n; ++i) {
    next[size_t(i)] = i + 1 < n ? i + 1 : -1;
    prev[size_t(i)] = i - 1;
  }
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), greater);
    const Candidate c = heap.back();
    heap.pop_back();
    const size_t pos = size_t(c.pos);
    if (ids[pos] < 0 || next[pos] < 0) continue;  // merged away meanwhile
    const size_t right = size_t(next[pos]);
    const Merge* m = find_merge(ids[pos], ids[right]);
    if (!m || m->rank != c.rank) continue;  // the pair here changed
    ids[pos] = m->result;
    ids[right] = -1;
    next[pos] = next[right];
    if (next[pos] >= 0) prev[size_t(next[pos])] = c.pos;
    push(prev[pos]);
    push(c.pos);
  }
  ids.erase(std::remove(ids.begin(), ids.end(), -1), ids.end());
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {  // Llama-3: a word that is a token is taken whole
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kCacheWordBytes;
  CacheShard& shard = cache_[StringHash{}(word) % kCacheShards];
  if (cacheable) {
    std::lock_guard<std::mutex> lock(shard.mutex);
    auto it = shard.words.find(word);
    if (it != shard.words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  thread_local std::vector<int32_t> ids;
  ids.clear();
  initial_symbols(word, ids);
  merge(ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(shard.mutex);
    if (shard.words.size() >= kCacheWords / kCacheShards) shard.words.clear();
    shard.words.emplace(std::string(word), ids);
  }
}

}  // namespace kiln::hf
