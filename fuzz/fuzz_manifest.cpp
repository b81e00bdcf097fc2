// libFuzzer target: a Kiln token-shard directory, manifest.json plus shards,
// through TokenDataset::open (with and without checksum verification).
//
// Input format: parts joined by kPartSeparator, in the order
//   manifest.json, train_0000.bin, val_0000.bin, train_0001.bin
// (missing trailing parts are files that do not exist; the seeds' manifests
// name these files).
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "fuzz_common.h"
#include "io/dataset_manifest.h"
#include "io/token_shards.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {
constexpr const char* kFiles[] = {"manifest.json", "train_0000.bin", "val_0000.bin",
                                  "train_0001.bin"};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = fuzz::scratch_dir() + "/shards";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (size_t i = 0; i < 4; ++i) {
    const size_t at = i == 3 ? std::string_view::npos : rest.find(fuzz::kPartSeparator);
    const std::string_view part = rest.substr(0, at);
    fuzz::write_bytes(dir + "/" + kFiles[i], part.data(), part.size());
    if (at == std::string_view::npos) break;
    rest.remove_prefix(at + fuzz::kPartSeparator.size());
  }

  fuzz::run_reader([&] { (void)read_manifest(dir + "/manifest.json"); });

  for (const char* split : {"train", "val", "all"}) {
    for (bool verify : {false, true}) {
      fuzz::run_reader([&] {
        DatasetOptions options;
        options.split = split;
        options.verify_checksums = verify;
        const TokenDataset ds = TokenDataset::open(dir, options);
        std::vector<int32_t> tokens(size_t(ds.size()));
        ds.read(0, ds.size(), tokens.data());
        for (int32_t t : tokens)
          fuzz::require(t >= 0 && t < ds.vocab_size(), "a token id at or above vocab_size");
        fuzz::require(ds.manifest() != nullptr, "a directory with manifest.json opened without it");
      });
    }
  }
  return 0;
}
