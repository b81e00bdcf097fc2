// Helpers shared by the data-pipeline tests.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/token_shards.h"
#include "run_kiln.h"

namespace kiln::test {

// The InputError message `fn` throws, or a marker that it threw none.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

inline void write_u16(const std::string& path, const std::vector<uint16_t>& ids) {
  write_text_file(path, std::string(reinterpret_cast<const char*>(ids.data()), ids.size() * 2));
}

inline std::vector<int32_t> read_all(const TokenDataset& ds) {
  std::vector<int32_t> out(static_cast<size_t>(ds.size()));
  ds.read(0, ds.size(), out.data());
  return out;
}

// Entries of `dir` whose names start with '.', i.e. staging or temp leftovers.
inline std::vector<std::string> hidden_entries(const std::string& dir) {
  std::vector<std::string> found;
  if (!std::filesystem::exists(dir)) return found;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && name[0] == '.') found.push_back(e.path().string());
  }
  return found;
}

}  // namespace kiln::test
