// Test helpers: run the built `kiln` CLI and give each test process its own
// scratch directory under KILN_TEST_TMPDIR.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace kiln::test {

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
};

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_text_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

inline std::string shell_quote(const std::string& arg) {
  std::string q = "'";
  for (char c : arg) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  return q + "'";
}

// A fresh directory for this process: <KILN_TEST_TMPDIR>/<name>_<pid>.
inline std::string scratch_dir(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(KILN_TEST_TMPDIR) / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// A fresh directory for the running gtest case:
// <KILN_TEST_TMPDIR>/<area>/<suite>.<case>.<pid>.
inline std::string case_dir(const std::string& area) {
  namespace fs = std::filesystem;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(KILN_TEST_TMPDIR) / area /
                       (std::string(info->test_suite_name()) + "." + info->name() + "." +
                        std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// Runs `kiln args...` with stdout and stderr captured (through files in `scratch`),
// standard input read from `stdin_path` when given (else inherited).
inline CliResult run_kiln(const std::vector<std::string>& args, const std::string& scratch,
                          const std::string& stdin_path = "") {
  std::string cmd = shell_quote(KILN_BINARY);
  for (const auto& a : args) cmd.append(" ").append(shell_quote(a));
  if (!stdin_path.empty()) cmd.append(" <").append(shell_quote(stdin_path));
  const std::string out_path = scratch + "/.cli_stdout", err_path = scratch + "/.cli_stderr";
  cmd.append(" >").append(shell_quote(out_path)).append(" 2>").append(shell_quote(err_path));
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text_file(out_path);
  r.err = read_text_file(err_path);
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  return r;
}

}  // namespace kiln::test
