#include "io/dataset_manifest.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/atomic_file.h"

namespace kiln {
namespace fs = std::filesystem;

namespace {
constexpr const char* kFormat = "kiln-token-shards";
constexpr int kVersion = 1;

template <typename T>
T required(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key))
    fail_input(where, std::string("missing field \"") + key + "\"");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail_input(where, std::string("field \"") + key + "\" has the wrong type", "",
               j.at(key).dump());
  }
}
}  // namespace

uint64_t DatasetManifest::tokens(const std::string& split) const {
  uint64_t n = 0;
  for (const auto& s : shards)
    if (s.split == split) n += s.tokens;
  return n;
}

uint64_t DatasetManifest::documents(const std::string& split) const {
  uint64_t n = 0;
  for (const auto& s : shards)
    if (s.split == split) n += s.documents;
  return n;
}

nlohmann::json DatasetManifest::to_json() const {
  nlohmann::json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["vocab_size"] = vocab_size;
  j["dtype"] = dtype_name(dtype);
  j["bos_id"] = bos_id;
  j["bos_per_document"] = bos_per_document;
  j["eos_id"] = eos_id;
  j["eos_per_document"] = eos_per_document;
  j["tokenizer"] = tokenizer;
  j["tokens"] = {{"train", this->tokens("train")}, {"val", this->tokens("val")}};
  j["documents"] = {{"train", documents("train")}, {"val", documents("val")}};
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : shards) {
    list.push_back({{"file", s.file},
                    {"split", s.split},
                    {"format", shard_format_name(s.format)},
                    {"tokens", s.tokens},
                    {"documents", s.documents},
                    {"xxh64", s.xxh64}});
  }
  j["shards"] = std::move(list);
  j["source"] = source;
  return j;
}

DatasetManifest DatasetManifest::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail_input(where, "manifest is not a JSON object");
  const std::string format = required<std::string>(j, "format", where);
  if (format != kFormat) fail_input(where, "not a Kiln shard manifest", kFormat, format);
  const int version = required<int>(j, "version", where);
  if (version != kVersion)
    fail_input(where, "unsupported manifest version", std::to_string(kVersion),
               std::to_string(version));
  DatasetManifest m;
  m.vocab_size = required<int64_t>(j, "vocab_size", where);
  if (m.vocab_size <= 0)
    fail_input(where, "vocab_size must be positive", "> 0", std::to_string(m.vocab_size));
  m.dtype = parse_dtype(required<std::string>(j, "dtype", where), where + ": dtype");
  if (m.dtype == TokenDType::uint16 && m.vocab_size > 65536)
    fail_input(where, "uint16 shards cannot hold this vocabulary", "vocab_size <= 65536",
               std::to_string(m.vocab_size));
  m.bos_id = j.value("bos_id", 1);
  m.bos_per_document = j.value("bos_per_document", true);
  m.eos_id = j.value("eos_id", -1);
  m.eos_per_document = j.value("eos_per_document", false);
  if (j.contains("tokenizer")) m.tokenizer = j["tokenizer"];
  if (j.contains("source")) m.source = j["source"];
  const auto& list = j.contains("shards") ? j["shards"] : nlohmann::json();
  if (!list.is_array()) fail_input(where, "missing field \"shards\" (an array)");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = where + ": shards[" + std::to_string(i) + "]";
    ManifestShard s;
    s.file = required<std::string>(list[i], "file", at);
    if (s.file.empty() || fs::path(s.file).is_absolute() || s.file.find("..") != std::string::npos)
      fail_input(at, "shard file must be a plain name inside the dataset directory", "", s.file);
    s.split = required<std::string>(list[i], "split", at);
    if (s.split != "train" && s.split != "val")
      fail_input(at, "unknown split", "train or val", s.split);
    s.tokens = required<uint64_t>(list[i], "tokens", at);
    s.documents = list[i].value("documents", uint64_t{0});
    s.format = parse_shard_format(list[i].value("format", std::string("flat")), at);
    s.xxh64 = list[i].value("xxh64", std::string());
    m.shards.push_back(std::move(s));
  }
  return m;
}

DatasetManifest read_manifest(const std::string& manifest_path) {
  std::ifstream in(manifest_path);
  if (!in) fail_input(manifest_path, "cannot open manifest");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    fail_input(manifest_path, std::string("manifest is not valid JSON: ") + e.what());
  }
  return DatasetManifest::from_json(j, manifest_path);
}

void write_manifest(const std::string& dir, const DatasetManifest& manifest) {
  write_file_atomic((fs::path(dir) / kManifestName).string(), manifest.to_json().dump(2) + "\n");
}

}  // namespace kiln
