#include "infer/model_dir_info.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

// The file's JSON object, or null when it does not exist.
nlohmann::json read_object(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return nullptr;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input(path.string(), "cannot read the file");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) fail_input(path.string(), "not valid JSON");
  if (!j.is_object()) fail_input(path.string(), "not a JSON object", "an object", j.type_name());
  return j;
}

void add_eos(const nlohmann::json& j, const fs::path& path, std::vector<int32_t>& ids) {
  if (!j.is_object() || !j.contains("eos_token_id") || j["eos_token_id"].is_null()) return;
  const nlohmann::json& e = j["eos_token_id"];
  auto add = [&](const nlohmann::json& v) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
      fail_input(path.string() + ": eos_token_id", "not a token id", "an integer >= 0",
                 v.dump());
    const int32_t id = int32_t(v.get<int64_t>());
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  };
  if (e.is_array()) {
    for (const auto& v : e) add(v);
  } else {
    add(e);
  }
}

template <typename T>
void read_number(const nlohmann::json& j, const char* key, const fs::path& path,
                 std::optional<T>& out) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return;
  const bool ok = std::is_integral_v<T> ? j[key].is_number_integer() : j[key].is_number();
  if (!ok)
    fail_input(path.string() + ": " + key, "wrong type",
               std::is_integral_v<T> ? "an integer" : "a number", j[key].type_name());
  out = j[key].get<T>();
}

}  // namespace

const std::vector<std::string>& generation_file_names() {
  static const std::vector<std::string> names = {
      "tokenizer.json",      "tokenizer.model",         "tokenizer_config.json",
      "chat_template.jinja", "special_tokens_map.json", "generation_config.json"};
  return names;
}

std::vector<std::string> copy_generation_files(const std::string& from_dir,
                                               const std::string& to_dir) {
  std::vector<std::string> copied;
  std::error_code ec;
  if (!fs::is_directory(from_dir, ec)) return copied;
  for (const std::string& name : generation_file_names()) {
    const fs::path from = fs::path(from_dir) / name, to = fs::path(to_dir) / name;
    if (!fs::is_regular_file(from, ec) || fs::exists(to, ec)) continue;
    const fs::path tmp = fs::path(to_dir) / ("." + name + ".tmp");
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
    if (!ec) fs::rename(tmp, to, ec);
    if (ec) {
      fs::remove(tmp, ec);
      fail_runtime(to.string(), "cannot copy " + from.string());
    }
    copied.push_back(name);
  }
  return copied;
}

ModelDirInfo read_model_dir_info(const std::string& path) {
  ModelDirInfo info;
  std::error_code ec;
  const fs::path dir(path);
  if (!fs::is_directory(dir, ec)) return info;
  if (fs::is_regular_file(dir / "tokenizer.json", ec))
    info.tokenizer = (dir / "tokenizer.json").string();
  else if (fs::is_regular_file(dir / "tokenizer.model", ec))
    info.tokenizer = (dir / "tokenizer.model").string();
  const fs::path config_path = dir / "config.json", gen_path = dir / "generation_config.json";
  add_eos(read_object(config_path), config_path, info.eos_ids);
  const nlohmann::json gen = read_object(gen_path);
  add_eos(gen, gen_path, info.eos_ids);
  if (gen.is_object() && gen.contains("do_sample") && !gen["do_sample"].is_null()) {
    if (!gen["do_sample"].is_boolean())
      fail_input(gen_path.string() + ": do_sample", "wrong type", "true or false",
                 gen["do_sample"].type_name());
    info.do_sample = gen["do_sample"].get<bool>();
  }
  read_number(gen, "temperature", gen_path, info.temperature);
  read_number(gen, "top_p", gen_path, info.top_p);
  read_number(gen, "top_k", gen_path, info.top_k);
  read_number(gen, "repetition_penalty", gen_path, info.repetition_penalty);
  read_number(gen, "max_new_tokens", gen_path, info.max_new_tokens);
  return info;
}

}  // namespace kiln
