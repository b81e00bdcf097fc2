// kiln tokenizer chat: render a conversation with a Hugging Face model's chat
// template (tokenizer_config.json), as transformers' apply_chat_template.
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli/command.h"
#include "core/error.h"
#include "tokenizer/chat_template.h"

namespace kiln::cli {
namespace {

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

// --var k=v: v as JSON when it parses, else as a string.
void add_var(nlohmann::ordered_json& context, const std::string& kv) {
  const size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0)
    fail_input("--var", "not a variable assignment", "NAME=VALUE", "'" + kv + "'");
  const std::string value = kv.substr(eq + 1);
  nlohmann::ordered_json v = nlohmann::ordered_json::parse(value, nullptr, false);
  context[kv.substr(0, eq)] = v.is_discarded() ? nlohmann::ordered_json(value) : v;
}

std::tm parse_now(const std::string& text) {
  std::tm t{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M", &t);
  if (!end) end = strptime(text.c_str(), "%Y-%m-%d", &t);
  if (!end || *end != '\0')
    fail_input("--now", "not a date", "YYYY-MM-DD or YYYY-MM-DDTHH:MM", "'" + text + "'");
  return t;
}

struct ChatOptions {
  std::string tokenizer, messages, tools, template_name, now;
  std::vector<std::string> vars;
  bool add_generation_prompt = false;
};

int run_chat(const ChatOptions& o) {
  const ChatTemplateSource src = load_chat_template(o.tokenizer, o.template_name);
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  nlohmann::ordered_json messages = read_json(o.messages);
  check_messages(messages, o.messages);
  context["messages"] = std::move(messages);
  if (!o.tools.empty()) {
    nlohmann::ordered_json tools = read_json(o.tools);
    if (!tools.is_array()) fail_input(o.tools, "not a tool list", "a JSON list", tools.type_name());
    context["tools"] = std::move(tools);
  }
  context["add_generation_prompt"] = o.add_generation_prompt;
  for (const auto& [key, value] : src.special_tokens.items()) context[key] = value;
  for (const std::string& kv : o.vars) add_var(context, kv);
  ChatRenderOptions options;
  if (!o.now.empty()) options.now = parse_now(o.now);
  const std::string prompt = src.chat_template.render(context, options);
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  return 0;
}

}  // namespace

// Called from cmd_tokenizer.cpp's setup.
void add_tokenizer_chat(CLI::App& app, const std::shared_ptr<std::function<int()>>& chosen) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* sub = app.add_subcommand(
      "chat", "Print a conversation rendered with a Hugging Face chat template (exact bytes)");
  sub->add_option("--tokenizer", o->tokenizer, "Model directory or its tokenizer_config.json")
      ->required();
  sub->add_option("--messages", o->messages, "Conversation: a JSON list of {role, content}")
      ->required();
  sub->add_flag("--add-generation-prompt", o->add_generation_prompt,
                "End with the assistant turn's header");
  sub->add_option("--tools", o->tools, "A JSON list of tool definitions");
  sub->add_option("--var", o->vars, "Template variable NAME=VALUE (VALUE as JSON, else text)");
  sub->add_option("--template-name", o->template_name,
                  "Which of a config's named templates (default: \"default\")");
  sub->add_option("--now", o->now, "The date strftime_now() sees: YYYY-MM-DD[THH:MM]");
  sub->callback([=] { *chosen = [=]() { return run_chat(*o); }; });
}

}  // namespace kiln::cli
