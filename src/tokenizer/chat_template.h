// Hugging Face chat templates (tokenizer_config.json "chat_template"), rendered
// byte-identically to @huggingface/jinja, the renderer of transformers.js.
//
//   auto t = ChatTemplate::parse(source, "tokenizer_config.json: chat_template");
//   std::string prompt = t.render({{"messages", msgs}, {"add_generation_prompt", true}});
//
// The language is @huggingface/jinja's Jinja subset with trim_blocks and
// lstrip_blocks on. Where that renderer differs from Python Jinja, Kiln
// follows the renderer: none prints as "", true as "true", strip('x') trims
// whitespace, macros see their caller's variables, and so on.
//
// Errors are InputError "<origin>:<line>:<column>: <what>": a syntax error at
// parse time; an unknown filter/test, a type error or raise_exception(msg) when
// rendering reaches it; runaway templates (macro recursion, output or work
// over the limits below).
#pragma once
#include <cstdint>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace kiln {

struct ChatTemplateLimits {
  size_t max_output_bytes = 64u << 20;  // of the prompt and of any string built on the way
  uint64_t max_steps = 20'000'000;      // evaluated nodes, loop iterations, range() items
  int max_call_depth = 100;             // nested macro calls
};

struct ChatRenderOptions {
  // What strftime_now() sees (local time). Unset: the current local time.
  std::optional<std::tm> now;
  ChatTemplateLimits limits;
};

class ChatTemplate {
 public:
  // `origin` names the template in errors, e.g. "tokenizer_config.json: chat_template".
  static ChatTemplate parse(std::string source, std::string origin);

  // `context` is a JSON object: its members become the template's variables.
  // Key order matters (tojson prints objects in it), hence ordered_json.
  std::string render(const nlohmann::ordered_json& context,
                     const ChatRenderOptions& options = {}) const;

  const std::string& origin() const;
  const std::string& source() const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

// The chat template of a Hugging Face model: `path` is a model directory
// (chat_template.jinja, else tokenizer_config.json) or a tokenizer_config.json.
// A config may hold one template string or a list of {name, template}; `name`
// picks one ("default" if empty). The special tokens come from the config,
// as strings or {"content": ...} objects.
struct ChatTemplateSource {
  ChatTemplate chat_template;
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();  // bos_token, ...
};
ChatTemplateSource load_chat_template(const std::string& path, const std::string& name = "");

}  // namespace kiln
