#include "io/token_shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/dataset_manifest.h"

namespace kiln {
namespace fs = std::filesystem;

// --- names ---------------------------------------------------------------------------

const char* dtype_name(TokenDType dtype) {
  return dtype == TokenDType::uint16 ? "uint16" : "uint32";
}

TokenDType parse_dtype(const std::string& name, const std::string& where) {
  if (name == "uint16") return TokenDType::uint16;
  if (name == "uint32") return TokenDType::uint32;
  fail_input(where, "unknown token dtype", "uint16 or uint32", name);
}

const char* shard_format_name(ShardFormat format) {
  return format == ShardFormat::flat ? "flat" : "llmc";
}

ShardFormat parse_shard_format(const std::string& name, const std::string& where) {
  if (name == "flat") return ShardFormat::flat;
  if (name == "llmc") return ShardFormat::llmc;
  fail_input(where, "unknown shard format", "flat or llmc", name);
}

TokenDType dtype_for_vocab(int64_t vocab_size) {
  return vocab_size <= 65536 ? TokenDType::uint16 : TokenDType::uint32;
}

// --- writing -------------------------------------------------------------------------

struct ShardWriter::Hash {
  XXH64_state_t* state = XXH64_createState();
  Hash() { XXH64_reset(state, 0); }
  ~Hash() { XXH64_freeState(state); }
};

ShardWriter::ShardWriter(std::string path, TokenDType dtype, ShardFormat format)
    : file_(std::move(path)), dtype_(dtype), format_(format), hash_(std::make_unique<Hash>()) {
  if (format_ == ShardFormat::llmc) {
    if (dtype_ != TokenDType::uint16)
      fail_input(file_.path(), "llm.c shards hold uint16 tokens only", "uint16", "uint32");
    // Placeholder header; the count is filled in by finish().
    std::vector<int32_t> header(kLlmcHeaderInts, 0);
    file_.write(header.data(), kLlmcHeaderBytes);
  }
}

ShardWriter::~ShardWriter() = default;

void ShardWriter::append(std::span<const int32_t> tokens) {
  const size_t width = dtype_bytes(dtype_);
  const int64_t limit = dtype_ == TokenDType::uint16 ? 65535 : INT32_MAX;
  scratch_.resize(tokens.size() * width);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t id = tokens[i];
    if (id < 0 || id > limit)
      fail_runtime(file_.path(),
                   "token id " + std::to_string(id) + " does not fit " + dtype_name(dtype_));
    max_id_ = std::max(max_id_, id);
    if (dtype_ == TokenDType::uint16) {
      const auto v = static_cast<uint16_t>(id);
      std::memcpy(scratch_.data() + i * 2, &v, 2);
    } else {
      const auto v = static_cast<uint32_t>(id);
      std::memcpy(scratch_.data() + i * 4, &v, 4);
    }
  }
  XXH64_update(hash_->state, scratch_.data(), scratch_.size());
  file_.write(scratch_.data(), scratch_.size());
  tokens_ += tokens.size();
}

ShardWriter::Summary ShardWriter::finish() {
  if (format_ == ShardFormat::llmc) {
    if (tokens_ > static_cast<uint64_t>(INT32_MAX))
      fail_runtime(file_.path(), "too many tokens for an llm.c header (int32 count)");
    const int32_t header[3] = {kLlmcMagic, kLlmcVersionUint16, static_cast<int32_t>(tokens_)};
    file_.write_at(0, header, sizeof(header));
  }
  Summary s;
  s.tokens = tokens_;
  s.bytes = file_.bytes_written();
  s.xxh64 = XXH64_digest(hash_->state);
  s.max_id = max_id_;
  file_.commit();
  return s;
}

// --- inspecting ----------------------------------------------------------------------

namespace {

ShardInfo inspect(const std::string& path, TokenDType flat_dtype, bool detect_llmc) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) fail_input(path, "shard file does not exist");
  if (!fs::is_regular_file(status)) fail_input(path, "shard is not a regular file");
  const uint64_t size = fs::file_size(path, ec);
  if (ec) fail_input(path, "cannot read shard size: " + ec.message());

  ShardInfo info;
  info.path = path;
  if (detect_llmc && size >= 4) {
    int32_t header[3] = {0, 0, 0};
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail_input(path, std::string("cannot open shard: ") + std::strerror(errno));
    const size_t got = std::fread(header, sizeof(int32_t), 3, f);
    std::fclose(f);
    if (got >= 1 && header[0] == kLlmcMagic) {
      if (size < kLlmcHeaderBytes)
        fail_input(path, "llm.c shard shorter than its header",
                   std::to_string(kLlmcHeaderBytes) + "+ bytes", std::to_string(size) + " bytes");
      if (header[1] != kLlmcVersionUint16)
        fail_input(path, "unsupported llm.c shard version", "1 (uint16 tokens)",
                   std::to_string(header[1]));
      const uint64_t payload = size - kLlmcHeaderBytes;
      if (payload % 2 != 0)
        fail_input(path, "llm.c shard payload has an odd byte count", "a multiple of 2 bytes",
                   std::to_string(payload) + " bytes");
      if (header[2] < 0 || static_cast<uint64_t>(header[2]) != payload / 2)
        fail_input(path, "llm.c header token count does not match the file size",
                   std::to_string(payload / 2) + " tokens", std::to_string(header[2]));
      info.format = ShardFormat::llmc;
      info.dtype = TokenDType::uint16;
      info.header_bytes = kLlmcHeaderBytes;
      info.tokens = payload / 2;
      return info;
    }
  }
  const size_t width = dtype_bytes(flat_dtype);
  if (size % width != 0)
    fail_input(path,
               std::string(size % 2 ? "odd byte count" : "byte count not a multiple of 4") +
                   " for " + dtype_name(flat_dtype) + " tokens",
               "a multiple of " + std::to_string(width) + " bytes",
               std::to_string(size) + " bytes");
  info.format = ShardFormat::flat;
  info.dtype = flat_dtype;
  info.tokens = size / width;
  return info;
}

struct ScanResult {
  int32_t max_id = -1;
  int64_t first_bad = -1;  // index of the first id >= limit
  int32_t bad_value = 0;
};

// Max id and the first id >= limit (limit <= 0: no check), in parallel chunks.
ScanResult scan(const TokenSpan& span, int64_t limit) {
  constexpr uint64_t kChunk = uint64_t{1} << 20;
  const int64_t chunks = static_cast<int64_t>((span.count + kChunk - 1) / kChunk);
  std::vector<ScanResult> part(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t c = 0; c < chunks; ++c) {
    const uint64_t begin = static_cast<uint64_t>(c) * kChunk;
    const uint64_t end = std::min(span.count, begin + kChunk);
    ScanResult r;
    if (span.dtype == TokenDType::uint16) {
      const auto* p = static_cast<const uint16_t*>(span.data);
      uint16_t m = 0;
      for (uint64_t i = begin; i < end; ++i) m = std::max(m, p[i]);
      r.max_id = m;
    } else {
      const auto* p = static_cast<const uint32_t*>(span.data);
      uint32_t m = 0;
      for (uint64_t i = begin; i < end; ++i) m = std::max(m, p[i]);
      // Ids >= 2^31 cannot be valid for any vocabulary; clamp so they are reported.
      r.max_id = m > static_cast<uint32_t>(INT32_MAX) ? INT32_MAX : static_cast<int32_t>(m);
    }
    if (limit > 0 && r.max_id >= limit) {
      for (uint64_t i = begin; i < end; ++i) {
        const int64_t v = span.dtype == TokenDType::uint16
                              ? static_cast<const uint16_t*>(span.data)[i]
                              : static_cast<int64_t>(static_cast<const uint32_t*>(span.data)[i]);
        if (v >= limit) {
          r.first_bad = static_cast<int64_t>(i);
          r.bad_value = static_cast<int32_t>(std::min<int64_t>(v, INT32_MAX));
          break;
        }
      }
    }
    part[static_cast<size_t>(c)] = r;
  }
  ScanResult total;
  for (const ScanResult& r : part) {
    total.max_id = std::max(total.max_id, r.max_id);
    if (total.first_bad < 0 && r.first_bad >= 0) {
      total.first_bad = r.first_bad;
      total.bad_value = r.bad_value;
    }
  }
  return total;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

ShardInfo inspect_shard(const std::string& path, TokenDType flat_dtype) {
  return inspect(path, flat_dtype, true);
}

// --- the dataset ---------------------------------------------------------------------

struct TokenDataset::Mapping {
  void* addr = nullptr;
  size_t length = 0;
  ~Mapping() {
    if (addr) ::munmap(addr, length);
  }
};

TokenDataset::TokenDataset() = default;
TokenDataset::TokenDataset(TokenDataset&&) noexcept = default;
TokenDataset& TokenDataset::operator=(TokenDataset&&) noexcept = default;
TokenDataset::~TokenDataset() = default;

TokenDataset TokenDataset::open(const std::string& path, const DatasetOptions& options) {
  if (options.split != "train" && options.split != "val" && options.split != "all")
    fail_input("split", "unknown dataset split", "train, val or all", options.split);
  TokenDataset ds;
  std::error_code ec;
  std::vector<ShardInfo> all;
  std::string manifest_path;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / kManifestName))
      manifest_path = (fs::path(path) / kManifestName).string();
  } else if (fs::path(path).filename() == kManifestName) {
    manifest_path = path;
  } else if (!fs::exists(path, ec)) {
    fail_input(path, "dataset does not exist");
  }

  if (!manifest_path.empty()) {
    // --- Kiln shards with a manifest.
    ds.manifest_ = std::make_unique<DatasetManifest>(read_manifest(manifest_path));
    const DatasetManifest& m = *ds.manifest_;
    const fs::path dir = fs::path(manifest_path).parent_path();
    for (const ManifestShard& s : m.shards) {
      const std::string file = (dir / s.file).string();
      ShardInfo info = inspect(file, m.dtype, s.format == ShardFormat::llmc);
      if (info.format != s.format)
        fail_input(file, "manifest mismatch: shard layout differs", shard_format_name(s.format),
                   shard_format_name(info.format));
      if (info.tokens != s.tokens)
        fail_input(file, "manifest mismatch: token count differs from " + manifest_path,
                   std::to_string(s.tokens) + " tokens", std::to_string(info.tokens) + " tokens");
      info.split = s.split;
      info.documents = static_cast<int64_t>(s.documents);
      info.xxh64 = s.xxh64;
      all.push_back(std::move(info));
    }
    if (options.tokenizer) {
      const TokenizerFingerprint& tok = *options.tokenizer;
      const std::string want = m.tokenizer.value("xxh64", std::string());
      if (m.vocab_size != tok.vocab_size)
        fail_input(
            manifest_path,
            "tokenizer mismatch: the dataset was made with a different vocabulary than " + tok.path,
            std::to_string(m.vocab_size) + " pieces", std::to_string(tok.vocab_size));
      if (!want.empty() && want != tok.xxh64)
        fail_input(manifest_path,
                   "tokenizer mismatch: the dataset was made with " +
                       m.tokenizer.value("path", std::string("another tokenizer")) + ", not " +
                       tok.path,
                   "xxh64 " + want, "xxh64 " + tok.xxh64);
    }
    if (options.vocab_size > 0 && m.vocab_size > options.vocab_size)
      fail_input(
          manifest_path, "vocabulary mismatch: the dataset's tokenizer is larger than the model's",
          "vocab_size <= " + std::to_string(options.vocab_size), std::to_string(m.vocab_size));
    ds.vocab_size_ = options.vocab_size > 0 ? options.vocab_size : m.vocab_size;
    ds.description_ = "kiln manifest";
  } else {
    // --- Bare shard files: one file, or the *.bin files of a directory.
    std::vector<std::string> files;
    if (fs::is_directory(path, ec)) {
      for (const auto& e : fs::directory_iterator(path, ec)) {
        if (e.is_regular_file() && e.path().extension() == ".bin" &&
            e.path().filename().string()[0] != '.')
          files.push_back(e.path().string());
      }
      if (files.empty()) fail_input(path, "no manifest.json and no *.bin shards in the directory");
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(path);
    }
    bool any_named_val = false;
    for (const auto& f : files)
      any_named_val |= lower(fs::path(f).filename().string()).find("val") != std::string::npos;
    for (size_t i = 0; i < files.size(); ++i) {
      ShardInfo info = inspect(files[i], TokenDType::uint16, true);
      const bool named_val =
          lower(fs::path(files[i]).filename().string()).find("val") != std::string::npos;
      const bool is_val = any_named_val ? named_val : (files.size() > 1 && i == 0);
      info.split = is_val ? "val" : "train";
      all.push_back(std::move(info));
    }
    const bool llmc = std::all_of(all.begin(), all.end(),
                                  [](const ShardInfo& s) { return s.format == ShardFormat::llmc; });
    ds.description_ = llmc ? "llm.c shards" : "flat uint16 shards";
    ds.vocab_size_ = options.vocab_size;
  }

  for (ShardInfo& info : all)
    if (options.split == "all" || info.split == options.split)
      ds.shards_.push_back(std::move(info));

  // Map the selected shards and validate their ids.
  ds.starts_.push_back(0);
  for (const ShardInfo& info : ds.shards_) {
    auto map = std::make_unique<Mapping>();
    const uint64_t bytes = info.header_bytes + info.tokens * dtype_bytes(info.dtype);
    if (info.tokens > 0) {
      int fd = ::open(info.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) fail_input(info.path, std::string("cannot open shard: ") + std::strerror(errno));
      void* addr = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
      ::close(fd);
      if (addr == MAP_FAILED)
        fail_runtime(info.path, std::string("cannot map shard: ") + std::strerror(errno));
      map->addr = addr;
      map->length = bytes;
    }
    ds.maps_.push_back(std::move(map));
    ds.starts_.push_back(ds.starts_.back() + static_cast<int64_t>(info.tokens));
  }
  ds.total_ = ds.starts_.back();

  const int64_t limit = ds.vocab_size_;
  for (size_t i = 0; i < ds.shards_.size(); ++i) {
    const TokenSpan span = ds.shard_tokens(i);
    const ShardInfo& info = ds.shards_[i];
    if (options.verify_checksums && !info.xxh64.empty()) {
      const uint64_t h = XXH64(span.data, span.count * dtype_bytes(span.dtype), 0);
      if (hex64(h) != info.xxh64)
        fail_input(info.path,
                   "manifest mismatch: shard contents changed since the manifest was written",
                   "xxh64 " + info.xxh64, "xxh64 " + hex64(h));
    }
    const ScanResult r = scan(span, limit);
    if (r.first_bad >= 0) {
      const uint64_t byte_offset =
          info.header_bytes + static_cast<uint64_t>(r.first_bad) * dtype_bytes(info.dtype);
      fail_input(info.path,
                 "token id out of range at token offset " + std::to_string(r.first_bad) +
                     " (byte offset " + std::to_string(byte_offset) + ")",
                 "id < vocab_size " + std::to_string(limit), std::to_string(r.bad_value));
    }
    ds.max_token_id_ = std::max(ds.max_token_id_, r.max_id);
  }
  if (ds.vocab_size_ <= 0) ds.vocab_size_ = static_cast<int64_t>(ds.max_token_id_) + 1;
  return ds;
}

TokenSpan TokenDataset::shard_tokens(size_t shard) const {
  const ShardInfo& info = shards_.at(shard);
  TokenSpan span;
  span.dtype = info.dtype;
  span.count = info.tokens;
  if (maps_[shard]->addr)
    span.data = static_cast<const char*>(maps_[shard]->addr) + info.header_bytes;
  return span;
}

void TokenDataset::read(int64_t offset, int64_t count, int32_t* out) const {
  if (offset < 0 || count < 0 || offset + count > total_)
    fail_runtime("TokenDataset::read", "range [" + std::to_string(offset) + ", " +
                                           std::to_string(offset + count) + ") outside [0, " +
                                           std::to_string(total_) + ")");
  // The shard holding `offset`: the last start <= offset.
  size_t shard = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), offset) -
                                     starts_.begin() - 1);
  while (count > 0) {
    const TokenSpan span = shard_tokens(shard);
    const int64_t local = offset - starts_[shard];
    const int64_t n = std::min<int64_t>(count, static_cast<int64_t>(span.count) - local);
    if (span.dtype == TokenDType::uint16) {
      const uint16_t* src = static_cast<const uint16_t*>(span.data) + local;
      for (int64_t i = 0; i < n; ++i) out[i] = src[i];
    } else {
      const uint32_t* src = static_cast<const uint32_t*>(span.data) + local;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(src[i]);
    }
    out += n;
    offset += n;
    count -= n;
    ++shard;
  }
}

}  // namespace kiln
