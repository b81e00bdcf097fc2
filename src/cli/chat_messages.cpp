#include "cli/chat_messages.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace kiln::cli {

nlohmann::ordered_json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input(path, "cannot read the file");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::ordered_json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    fail_input(path, std::string("not valid JSON: ") + e.what());
  }
}

// A list of {role, content} objects; content may be null when tool_calls exist.
void check_messages(const nlohmann::ordered_json& messages, const std::string& path) {
  if (!messages.is_array())
    fail_input(path, "not a conversation", "a JSON list of messages", messages.type_name());
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string where = path + ": message " + std::to_string(i);
    if (!m.is_object()) fail_input(where, "not a message", "an object", m.type_name());
    if (!m.contains("role") || !m["role"].is_string())
      fail_input(where, "no role", "a string \"role\"",
                 m.contains("role") ? m["role"].type_name() : "none");
    const bool tool_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
    const bool ok = m.contains("content") &&
                    (m["content"].is_string() || (m["content"].is_null() && tool_calls));
    if (!ok)
      fail_input(where, "bad content",
                 tool_calls ? "a string or null \"content\"" : "a string \"content\"",
                 m.contains("content") ? m["content"].type_name() : "none");
  }
}

}  // namespace kiln::cli
