// The layer rule, checked the way the build applies it: each layer compiles
// against build/layers/<layer>/, a directory of links to the folders it may
// use (CMakeLists.txt, kiln_layer). Here
//   - every header of a layer preprocesses with that layer's include path alone
//     (so no header reaches up the stack);
//   - a scratch file in a layer that includes a header of any layer above it, or
//     beside it without a declared use, fails to preprocess (the deliberate
//     upward include of the layers issue, for every pair of layers);
//   - every source file of src/ is compiled with its own layer's include path
//     and no other Kiln include directory (read from compile_commands.json), so
//     the build cannot quietly see all of src/.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "run_kiln.h"

namespace fs = std::filesystem;
namespace kiln::test {
namespace {

// layer -> the layers it may include (itself first), from the build's closures.txt.
std::map<std::string, std::set<std::string>> read_closures() {
  std::map<std::string, std::set<std::string>> closures;
  std::ifstream in(std::string(KILN_LAYER_DIR) + "/closures.txt");
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::set<std::string>& allowed = closures[line.substr(0, colon)];
    std::stringstream rest(line.substr(colon + 1));
    std::string item;
    while (std::getline(rest, item, ';')) {
      item.erase(0, item.find_first_not_of(' '));
      if (!item.empty()) allowed.insert(item);
    }
  }
  return closures;
}

// Runs the compiler's preprocessor on `source` with only `layer`'s include path.
// Returns its exit status; `err` gets its diagnostics.
int preprocess(const std::string& layer, const std::string& source, const std::string& scratch,
               std::string* err) {
  const std::string file = scratch + "/probe_" + layer + ".cpp";
  write_text_file(file, source);
  std::string cmd = shell_quote(KILN_CXX) + " -std=c++20 -E -o /dev/null -I" +
                    shell_quote(std::string(KILN_LAYER_DIR) + "/" + layer);
  if (fs::exists("/usr/local/cuda/include")) cmd += " -isystem /usr/local/cuda/include";
  cmd.append(" ").append(shell_quote(file));
  cmd.append(" 2>").append(shell_quote(scratch + "/probe.err"));
  const int status = std::system(cmd.c_str());
  *err = read_text_file(scratch + "/probe.err");
  return status;
}

std::vector<std::string> headers_of(const std::string& layer) {
  std::vector<std::string> headers;
  const fs::path root = fs::path(KILN_SOURCE_DIR) / "src";
  for (const auto& entry : fs::recursive_directory_iterator(root / layer)) {
    if (entry.path().extension() == ".h")
      headers.push_back(fs::relative(entry.path(), root).string());
  }
  std::sort(headers.begin(), headers.end());
  return headers;
}

class Layers : public ::testing::Test {
 protected:
  void SetUp() override {
    closures_ = read_closures();
    ASSERT_GE(closures_.size(), 10u) << "closures.txt lists too few layers";
    scratch_ = scratch_dir("layers");
  }
  std::map<std::string, std::set<std::string>> closures_;
  std::string scratch_;
};

TEST_F(Layers, EveryHeaderCompilesWithItsOwnLayersIncludesOnly) {
  int checked = 0;
  for (const auto& [layer, allowed] : closures_) {
    for (const std::string& header : headers_of(layer)) {
      std::string err;
      EXPECT_EQ(preprocess(layer, "#include \"" + header + "\"\n", scratch_, &err), 0)
          << header << " reaches outside the layers " << layer << " may use:\n"
          << err;
      ++checked;
    }
  }
  EXPECT_GT(checked, 50);
}

TEST_F(Layers, AnIncludeOfAnUndeclaredLayerFailsToCompile) {
  int refused = 0;
  for (const auto& [layer, allowed] : closures_) {
    for (const auto& [other, other_allowed] : closures_) {
      const std::vector<std::string> headers = headers_of(other);
      if (headers.empty()) continue;  // cli has no headers of its own to point at
      std::string err;
      const int status =
          preprocess(layer, "#include \"" + headers.front() + "\"\n", scratch_, &err);
      if (allowed.count(other)) {
        EXPECT_EQ(status, 0) << layer << " may include " << headers.front() << ":\n" << err;
      } else {
        EXPECT_NE(status, 0) << layer << " included " << headers.front()
                             << " although it does not use layer " << other;
        EXPECT_NE(err.find(headers.front()), std::string::npos) << err;
        ++refused;
      }
    }
  }
  // Eleven layers in a strict order leave dozens of forbidden pairs; at least
  // core -> everything else and io -> tokenizer are among them.
  EXPECT_GT(refused, 40);
  EXPECT_EQ(closures_["io"].count("tokenizer"), 0u);
  EXPECT_EQ(closures_["train"].count("report"), 0u);
  EXPECT_EQ(closures_["core"].size(), 1u);
}

TEST_F(Layers, EverySourceIsCompiledWithItsLayersIncludePathOnly) {
  std::ifstream in(KILN_COMPILE_COMMANDS);
  ASSERT_TRUE(in) << KILN_COMPILE_COMMANDS;
  const nlohmann::json commands = nlohmann::json::parse(in);
  const std::string src = std::string(KILN_SOURCE_DIR) + "/src/";
  const std::string layers = std::string(KILN_LAYER_DIR) + "/";
  std::set<std::string> compiled;
  for (const auto& entry : commands) {
    const std::string file = entry.value("file", "");
    if (file.rfind(src, 0) != 0) continue;  // tests, benchmarks: they may see everything
    const std::string layer = file.substr(src.size(), file.find('/', src.size()) - src.size());
    ASSERT_TRUE(closures_.count(layer)) << file << " is in no declared layer";
    const std::string command = entry.value("command", "");
    std::stringstream words(command);
    std::string word;
    while (words >> word) {
      if (word.rfind("-I", 0) != 0) continue;
      const std::string dir = word.substr(2);
      EXPECT_NE(dir, std::string(KILN_SOURCE_DIR) + "/src") << file << " sees all of src/";
      if (dir.rfind(layers, 0) == 0) {
        EXPECT_TRUE(closures_[layer].count(dir.substr(layers.size())))
            << file << " (layer " << layer << ") has the include path of layer "
            << dir.substr(layers.size());
      }
    }
    compiled.insert(file);
  }
  // Every C++ source of src/ is among them (the CUDA folder and the no-CUDA
  // stand-in depend on the build's options), so none escapes the check.
  int sources = 0;
  for (const auto& entry : fs::recursive_directory_iterator(src)) {
    const std::string path = entry.path().string();
    if (entry.path().extension() != ".cpp" || path.find("/backend/cuda/") != std::string::npos ||
        entry.path().filename() == "cuda_factory_none.cpp")
      continue;
    EXPECT_TRUE(compiled.count(path)) << path << " has no compile command";
    ++sources;
  }
  EXPECT_GT(sources, 50);
}

}  // namespace
}  // namespace kiln::test
