// A JSON value together with its path inside tokenizer.json, so every error
// about the file can say where it is ("pre_tokenizer.pretokenizers[1].type").
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.h"

namespace kiln::hf {

class JsonAt {
 public:
  JsonAt(const nlohmann::json& value, std::string path, const std::string* file)
      : value_(&value), path_(std::move(path)), file_(file) {}

  const nlohmann::json& value() const { return *value_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return *file_; }
  bool is_null() const { return value_->is_null(); }
  bool has(std::string_view key) const {
    return value_->is_object() && value_->contains(key) && !(*value_)[std::string(key)].is_null();
  }

  // The member `key` (null JSON when absent, for optional fields).
  JsonAt operator[](std::string_view key) const;
  JsonAt at(size_t index) const;
  size_t size() const { return value_->size(); }

  // Typed reads: InputError naming the path when the value has another type.
  std::string str() const;
  bool boolean() const;
  int64_t integer() const;
  void expect_object() const;
  void expect_array() const;

  // Optional members with a default when absent or null.
  std::string str_or(std::string_view key, std::string fallback) const;
  bool bool_or(std::string_view key, bool fallback) const;

  [[noreturn]] void fail(const std::string& what, const std::string& expected = "",
                         const std::string& got = "") const;
  // "<path>: "<value>" is not supported".
  [[noreturn]] void unsupported() const;

 private:
  const nlohmann::json* value_;
  std::string path_;
  const std::string* file_;
};

}  // namespace kiln::hf
