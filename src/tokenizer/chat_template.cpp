// ChatTemplate: parse once, render per conversation; and loading a Hugging
// Face model's template and special tokens.
#include "tokenizer/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/error.h"
#include "tokenizer/chat_template_eval.h"

namespace kiln {

struct ChatTemplate::Impl {
  std::string source, origin;
  std::vector<chat::NodePtr> program;
  chat::Node global_site;  // where errors of global functions point without a call site

  std::string line_col(uint32_t offset) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < offset && i < source.size(); ++i) {
      if (source[i] == '\n') {
        ++line;
        col = 1;
      } else if ((static_cast<unsigned char>(source[i]) & 0xc0) != 0x80) {
        ++col;  // columns count characters, not UTF-8 bytes
      }
    }
    return std::to_string(line) + ":" + std::to_string(col);
  }
  std::string where(uint32_t offset) const { return origin + ":" + line_col(offset); }
  static std::string locate(const void* ctx, uint32_t offset) {
    return static_cast<const Impl*>(ctx)->line_col(offset);
  }
  static void fail(const void* ctx, uint32_t offset, const std::string& what) {
    fail_input(static_cast<const Impl*>(ctx)->where(offset), what);
  }
  chat::SourceRef ref() const { return {this, &Impl::fail, &Impl::locate}; }
};

ChatTemplate ChatTemplate::parse(std::string source, std::string origin) {
  auto impl = std::make_shared<Impl>();
  impl->source = std::move(source);
  impl->origin = std::move(origin);
  impl->global_site.kind = chat::N::identifier;
  if (impl->source.size() > (1u << 30)) fail_input(impl->origin, "template larger than 1 GiB");
  const chat::SourceRef ref = impl->ref();
  const std::vector<chat::Token> tokens = chat::lex(impl->source, ref);
  impl->program = chat::parse(tokens, static_cast<uint32_t>(impl->source.size()), ref);
  ChatTemplate t;
  t.impl_ = std::move(impl);
  return t;
}

const std::string& ChatTemplate::origin() const { return impl_->origin; }
const std::string& ChatTemplate::source() const { return impl_->source; }

std::string ChatTemplate::render(const nlohmann::ordered_json& context,
                                 const ChatRenderOptions& options) const {
  if (!context.is_object())
    fail_input(impl_->origin, "the template context must be a JSON object", "an object",
               context.type_name());
  std::tm now{};
  if (options.now) {
    now = *options.now;
  } else {
    const std::time_t t = std::time(nullptr);
    localtime_r(&t, &now);
  }
  const chat::SourceRef ref = impl_->ref();
  chat::Interpreter interpreter(ref, options.limits, now);
  auto globals = std::make_shared<chat::Env>();
  chat::add_globals(interpreter, *globals, impl_->global_site);
  for (auto it = context.begin(); it != context.end(); ++it) {
    // The reference refuses to redeclare a global such as "namespace" or "true".
    if (globals->vars.count(it.key()))
      fail_input(impl_->origin, "context variable \"" + it.key() + "\" is a built-in name");
    globals->set(it.key(), chat::from_json(it.value()));
  }
  try {
    return interpreter.run(impl_->program, globals);
  } catch (const std::runtime_error& e) {
    if (dynamic_cast<const InputError*>(&e)) throw;
    fail_input(impl_->origin, e.what());  // to_json met a function value
  }
}

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input(path, "cannot read the file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "chat_template" as a string, or [{name, template}, ...].
std::string pick_template(const nlohmann::ordered_json& t, const std::string& file,
                          const std::string& name, std::string* origin) {
  *origin = file + ": chat_template";
  if (t.is_string()) {
    if (!name.empty() && name != "default")
      fail_input(file, "no chat template named \"" + name + "\"", "a list of named templates",
                 "a single template");
    return t.get<std::string>();
  }
  if (!t.is_array()) fail_input(*origin, "not a template", "a string or a list", t.type_name());
  const std::string want = name.empty() ? "default" : name;
  for (size_t i = 0; i < t.size(); ++i) {
    const auto& e = t[i];
    if (!e.is_object() || !e.contains("name") || !e.contains("template") ||
        !e["name"].is_string() || !e["template"].is_string())
      fail_input(*origin + "[" + std::to_string(i) + "]", "not a named template",
                 "{\"name\": string, \"template\": string}", e.dump());
    if (e["name"] == want) {
      *origin = file + ": chat_template[" + std::to_string(i) + "] (" + want + ")";
      return e["template"].get<std::string>();
    }
  }
  fail_input(*origin, "no chat template named \"" + want + "\"");
}

}  // namespace

ChatTemplateSource load_chat_template(const std::string& path, const std::string& name) {
  namespace fs = std::filesystem;
  const bool dir = fs::is_directory(path);
  const std::string config_path = dir ? (fs::path(path) / "tokenizer_config.json").string() : path;
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  const bool have_config = !dir || fs::exists(config_path);
  if (have_config) {
    try {
      config = nlohmann::ordered_json::parse(read_file(config_path));
    } catch (const nlohmann::json::exception& e) {
      fail_input(config_path, std::string("not valid JSON: ") + e.what());
    }
    if (!config.is_object()) fail_input(config_path, "not a JSON object");
  }
  ChatTemplateSource out{ChatTemplate{}, nlohmann::ordered_json::object()};
  const std::string jinja_path = dir ? (fs::path(path) / "chat_template.jinja").string() : "";
  std::string source, origin;
  if (dir && fs::exists(jinja_path) && name.empty()) {
    source = read_file(jinja_path);
    origin = jinja_path;
  } else if (config.contains("chat_template")) {
    source = pick_template(config["chat_template"], config_path, name, &origin);
  } else {
    fail_input(dir ? path : config_path, "no chat template",
               "chat_template.jinja or a \"chat_template\" in tokenizer_config.json");
  }
  out.chat_template = ChatTemplate::parse(std::move(source), std::move(origin));
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
    if (!config.contains(key)) continue;
    const auto& v = config[key];
    if (v.is_string()) out.special_tokens[key] = v;
    if (v.is_object() && v.contains("content") && v["content"].is_string())
      out.special_tokens[key] = v["content"];
  }
  return out;
}

}  // namespace kiln
