#include "core/error.h"

namespace kiln {

std::string format_error(const std::string& where, const std::string& what,
                         const std::string& expected, const std::string& got) {
  std::string message = where.empty() ? what : where + ": " + what;
  if (!expected.empty() || !got.empty()) {
    message += " (";
    if (!expected.empty()) message += "expected " + expected;
    if (!expected.empty() && !got.empty()) message += ", ";
    if (!got.empty()) message += "got " + got;
    message += ")";
  }
  return message;
}

void fail_input(const std::string& where, const std::string& what, const std::string& expected,
                const std::string& got) {
  throw InputError(format_error(where, what, expected, got));
}

void fail_runtime(const std::string& where, const std::string& what) {
  throw RuntimeError(format_error(where, what));
}

}  // namespace kiln
