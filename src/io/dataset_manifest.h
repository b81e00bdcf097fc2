// manifest.json: what a Kiln token-shard directory holds.
//
//   {"format": "kiln-token-shards", "version": 1,
//    "vocab_size": 4096, "dtype": "uint16", "bos_id": 1, "bos_per_document": true,
//    "tokenizer": {"path": ..., "format": "sentencepiece", "xxh64": "...", "vocab_size": 4096,
//    ...}, "tokens": {"train": N, "val": M}, "documents": {"train": n, "val": m}, "shards":
//    [{"file": "train_0000.bin", "split": "train", "format": "flat",
//                "tokens": N, "documents": n, "xxh64": "..."}, ...],
//    "source": {...how it was made: inputs, val_fraction, ...}}
//
// Shards are flat little-endian uint16/uint32 token ids (llama2.c's layout,
// so its train.py reads Kiln's uint16 shards as they are) or llm.c's
// 256-int32-header layout; the manifest is written last, atomically, so a
// directory with a manifest is always complete.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/file_util.h"  // hex64
#include "io/token_shards.h"

namespace kiln {

struct ManifestShard {
  std::string file;   // relative to the manifest's directory
  std::string split;  // "train" or "val"
  ShardFormat format = ShardFormat::flat;
  uint64_t tokens = 0;
  uint64_t documents = 0;
  std::string xxh64;  // of the token payload (header excluded); empty = unknown
};

struct DatasetManifest {
  int64_t vocab_size = 0;
  TokenDType dtype = TokenDType::uint16;
  int32_t bos_id = 1;
  bool bos_per_document = true;  // each document starts with BOS (SentencePiece, Llama)
  int32_t eos_id = -1;
  bool eos_per_document = false;  // each ends with EOS instead (tokenizers without BOS: Qwen)
  nlohmann::json tokenizer = nlohmann::json::object();  // "xxh64" is checked against a tokenizer
  nlohmann::json source = nlohmann::json::object();
  std::vector<ManifestShard> shards;

  uint64_t tokens(const std::string& split) const;
  uint64_t documents(const std::string& split) const;

  nlohmann::json to_json() const;
  // Validates the fields; `where` names the file in errors.
  static DatasetManifest from_json(const nlohmann::json& j, const std::string& where);
};

constexpr const char* kManifestName = "manifest.json";

// Reads and validates <dir>/manifest.json.
DatasetManifest read_manifest(const std::string& manifest_path);
// Writes <dir>/manifest.json atomically.
void write_manifest(const std::string& dir, const DatasetManifest& manifest);

}  // namespace kiln
