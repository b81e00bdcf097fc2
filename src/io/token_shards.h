// Token shards: writing them, and reading every layout Kiln accepts.
//
// Layouts (all little-endian):
//   flat   -- nothing but token ids, uint16 (llama2.c's data*.bin, the ANE
//             work's tinystories_data00.bin) or uint32 (vocabularies > 65536).
//   llm.c  -- 256 int32 header (magic 20240520, version 1 = uint16 tokens,
//             header[2] = token count), then the ids. Detected by the magic.
//   Kiln   -- a directory of flat shards plus manifest.json (dataset_manifest.h)
//             naming each shard's split, counts and checksum, the tokenizer and
//             the vocabulary size.
//
// TokenDataset gives the trainer random access to one split's tokens as one
// long array spanning all its shards (memory-mapped, read-only).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "io/atomic_file.h"

namespace kiln {

struct DatasetManifest;

enum class TokenDType : uint8_t { uint16, uint32 };
enum class ShardFormat : uint8_t { flat, llmc };

inline size_t dtype_bytes(TokenDType dtype) { return dtype == TokenDType::uint16 ? 2 : 4; }
const char* dtype_name(TokenDType dtype);
TokenDType parse_dtype(const std::string& name, const std::string& where);
const char* shard_format_name(ShardFormat format);
ShardFormat parse_shard_format(const std::string& name, const std::string& where);
// uint16 when every id of the vocabulary fits (vocab_size <= 65536), else uint32.
TokenDType dtype_for_vocab(int64_t vocab_size);

constexpr int32_t kLlmcMagic = 20240520;
constexpr int32_t kLlmcVersionUint16 = 1;
constexpr size_t kLlmcHeaderInts = 256;
constexpr size_t kLlmcHeaderBytes = kLlmcHeaderInts * sizeof(int32_t);

// Streams token ids into one shard, atomically (the file appears complete on
// finish() or not at all). Ids must fit the dtype.
class ShardWriter {
 public:
  ShardWriter(std::string path, TokenDType dtype, ShardFormat format = ShardFormat::flat);
  ~ShardWriter();

  void append(std::span<const int32_t> tokens);

  struct Summary {
    uint64_t tokens = 0;
    uint64_t bytes = 0;  // file size, header included
    uint64_t xxh64 = 0;  // of the token payload
    int32_t max_id = -1;
  };
  Summary finish();
  uint64_t tokens() const { return tokens_; }
  const std::string& path() const { return file_.path(); }

 private:
  AtomicFile file_;
  TokenDType dtype_;
  ShardFormat format_;
  struct Hash;
  std::unique_ptr<Hash> hash_;
  std::vector<char> scratch_;
  uint64_t tokens_ = 0;
  int32_t max_id_ = -1;
};

// One shard file as found on disk.
struct ShardInfo {
  std::string path;
  ShardFormat format = ShardFormat::flat;
  TokenDType dtype = TokenDType::uint16;
  uint64_t header_bytes = 0;
  uint64_t tokens = 0;
  std::string split;       // "train", "val"
  int64_t documents = -1;  // from a manifest; -1 when unknown
  std::string xxh64;       // from a manifest; empty when unknown
};

// Reads a shard's header and size and validates them: an llm.c header (magic,
// version, count matching the size) or a flat file of `flat_dtype` (size a
// multiple of the id width). InputError naming the path otherwise.
ShardInfo inspect_shard(const std::string& path, TokenDType flat_dtype = TokenDType::uint16);

// Read-only ids of one shard, in its own width.
struct TokenSpan {
  const void* data = nullptr;
  TokenDType dtype = TokenDType::uint16;
  uint64_t count = 0;
  int32_t at(uint64_t i) const {
    return dtype == TokenDType::uint16
               ? static_cast<const uint16_t*>(data)[i]
               : static_cast<int32_t>(static_cast<const uint32_t*>(data)[i]);
  }
};

// The identity of a tokenizer, as a dataset manifest records it
// (data/tokenizer_fingerprint.h makes one from a loaded Tokenizer).
struct TokenizerFingerprint {
  std::string path;  // for messages
  int64_t vocab_size = 0;
  std::string xxh64;  // of the tokenizer file's bytes, 16 hex digits
};

struct DatasetOptions {
  std::string split = "train";  // "train", "val" or "all"
  int64_t vocab_size = 0;       // ids must be below this (0: the manifest's, else unchecked)
  std::optional<TokenizerFingerprint> tokenizer = std::nullopt;  // must match the manifest's when given
  bool verify_checksums = false;  // recompute each shard's xxh64 against the manifest
};

class TokenDataset {
 public:
  // `path`: a Kiln shard directory (or its manifest.json), a directory of
  // *.bin shards without manifest, or one shard file. Without a manifest,
  // shards whose name contains "val" form the val split; if none does and
  // there are several, the first (sorted) is val as in llama2.c; a single
  // file is all train. Validates everything listed in bad-input rules:
  // sizes, headers, manifest/file and manifest/tokenizer agreement, ids < vocab.
  static TokenDataset open(const std::string& path, const DatasetOptions& options = {});

  TokenDataset(TokenDataset&&) noexcept;
  TokenDataset& operator=(TokenDataset&&) noexcept;
  ~TokenDataset();

  // Tokens in the selected split, all shards concatenated in order.
  int64_t size() const { return total_; }
  // Copies tokens [offset, offset + count) into out (widened to int32). The
  // range must lie inside [0, size()); wrap-around is the caller's business.
  void read(int64_t offset, int64_t count, int32_t* out) const;

  // The manifest's vocabulary, else options.vocab_size, else max_token_id() + 1.
  int64_t vocab_size() const { return vocab_size_; }
  int32_t max_token_id() const { return max_token_id_; }
  const std::vector<ShardInfo>& shards() const { return shards_; }
  TokenSpan shard_tokens(size_t shard) const;
  // "kiln manifest", "llm.c shards", "flat uint16 shards", ...
  const std::string& description() const { return description_; }
  const DatasetManifest* manifest() const { return manifest_.get(); }

 private:
  TokenDataset();
  struct Mapping;
  std::vector<ShardInfo> shards_;
  std::vector<std::unique_ptr<Mapping>> maps_;
  std::vector<int64_t> starts_;  // starts_[i] = first global offset of shard i; back() = total
  int64_t total_ = 0;
  int64_t vocab_size_ = 0;
  int32_t max_token_id_ = -1;
  std::string description_;
  std::unique_ptr<DatasetManifest> manifest_;
};

}  // namespace kiln
