// Errors that reach the user. Bad input is exit code 2, a runtime failure 1.
// Message form: "kiln: error: <path>: <what is wrong> (expected X, got Y)".
#pragma once
#include <stdexcept>
#include <string>

namespace kiln {

// The user gave us something we cannot accept: a file, a flag, a config field.
class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
  int exit_code() const { return 2; }
};

// Something failed while running (out of memory, disk full, a library refused).
class RuntimeError : public std::runtime_error {
 public:
  explicit RuntimeError(const std::string& message) : std::runtime_error(message) {}
  int exit_code() const { return 1; }
};

// "<where>: <what> (expected <expected>, got <got>)"; empty parts are left out.
std::string format_error(const std::string& where, const std::string& what,
                         const std::string& expected = "", const std::string& got = "");

[[noreturn]] void fail_input(const std::string& where, const std::string& what,
                             const std::string& expected = "", const std::string& got = "");
[[noreturn]] void fail_runtime(const std::string& where, const std::string& what);

}  // namespace kiln
