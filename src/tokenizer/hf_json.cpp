// JsonAt: typed, path-naming reads of tokenizer.json values.
#include "tokenizer/hf_json.h"

#include <algorithm>

namespace kiln::hf {
namespace {
const nlohmann::json& null_json() {
  static const nlohmann::json null;
  return null;
}

std::string type_name(const nlohmann::json& v) { return v.type_name(); }
}  // namespace

JsonAt JsonAt::operator[](std::string_view key) const {
  const std::string child = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  if (!value_->is_object()) fail("not an object", "object", type_name(*value_));
  auto it = value_->find(key);
  return JsonAt(it == value_->end() ? null_json() : *it, child, file_);
}

JsonAt JsonAt::at(size_t index) const {
  // Sequences nest through arrays; real files nest two or three deep, and a
  // bound keeps the recursive readers' stack small on hostile input.
  if (std::count(path_.begin(), path_.end(), '[') >= 32) fail("nested too deeply", "< 32 levels");
  return JsonAt((*value_)[index], path_ + "[" + std::to_string(index) + "]", file_);
}

void JsonAt::fail(const std::string& what, const std::string& expected,
                  const std::string& got) const {
  fail_input(*file_, path_ + ": " + what, expected, got);
}

void JsonAt::unsupported() const {
  fail_input(*file_, path_ + ": " + value_->dump() + " is not supported");
}

std::string JsonAt::str() const {
  if (!value_->is_string()) fail("wrong type", "string", type_name(*value_));
  return value_->get<std::string>();
}

bool JsonAt::boolean() const {
  if (!value_->is_boolean()) fail("wrong type", "boolean", type_name(*value_));
  return value_->get<bool>();
}

int64_t JsonAt::integer() const {
  if (!value_->is_number_integer()) fail("wrong type", "integer", type_name(*value_));
  return value_->get<int64_t>();
}

void JsonAt::expect_object() const {
  if (!value_->is_object()) fail("wrong type", "object", type_name(*value_));
}

void JsonAt::expect_array() const {
  if (!value_->is_array()) fail("wrong type", "array", type_name(*value_));
}

std::string JsonAt::str_or(std::string_view key, std::string fallback) const {
  const JsonAt v = (*this)[key];
  return v.is_null() ? fallback : v.str();
}

bool JsonAt::bool_or(std::string_view key, bool fallback) const {
  const JsonAt v = (*this)[key];
  return v.is_null() ? fallback : v.boolean();
}

}  // namespace kiln::hf
