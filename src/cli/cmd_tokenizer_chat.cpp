// kiln tokenizer chat: render a conversation with a Hugging Face model's chat
// template (tokenizer_config.json), as transformers' apply_chat_template.
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli/chat_messages.h"
#include "cli/command.h"
#include "core/error.h"
#include "tokenizer/chat_template.h"

namespace kiln::cli {
namespace {

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
