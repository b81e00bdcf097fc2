// Conversations as JSON for `kiln tokenizer chat` and `kiln chat`.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace kiln::cli {

// The JSON in `path`; InputError naming it when unreadable or not JSON.
nlohmann::ordered_json read_json(const std::string& path);

// InputError naming `path` and the message unless `messages` is a list of
// {role: string, content: string} objects (content may be null with tool_calls).
void check_messages(const nlohmann::ordered_json& messages, const std::string& path);

}  // namespace kiln::cli
