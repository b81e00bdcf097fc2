// kiln chat: a multi-turn conversation with a model through its chat template.
//
// Each line read from standard input is a user turn (a terminal gets a "> "
// prompt; a pipe is read the same way, so a script can hold a conversation).
// The whole conversation is rendered with the template on every turn, and only
// the tokens past what the KV cache already holds are prefilled. /reset forgets
// the conversation (the --system message stays), /exit or end of input quits.
// Ctrl-C stops the reply being generated (what was generated stays in the
// history); at the prompt it is ignored. A turn that fails (the conversation
// outgrows --context, say) prints the error and the conversation goes on.
//
// --messages FILE instead renders that conversation (a JSON list of {role,
// content}) and prints one reply.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <iostream>
#include <string>

#include "cli/chat_messages.h"
#include "cli/command.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "tokenizer/chat_template.h"

namespace kiln::cli {
namespace {

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

struct ChatArgs {
  GenerationFlags flags;
  std::string system, messages, template_path, template_name;
  bool show_stats = false;
};

class Chat {
 public:
  Chat(const ChatArgs& a, GenerationModel& m, const ChatTemplateSource& t)
      : args_(a), m_(m), template_(t) {
    reset();
  }

  void reset() {
    conversation_ = nlohmann::ordered_json::array();
    if (!args_.system.empty())
      conversation_.push_back({{"role", "system"}, {"content", args_.system}});
  }
  nlohmann::ordered_json& conversation() { return conversation_; }

  // Renders the conversation with the generation prompt, streams the reply to
  // stdout and appends it to the conversation.
  void reply() {
    nlohmann::ordered_json context = nlohmann::ordered_json::object();
    for (const auto& [key, value] : template_.special_tokens.items()) context[key] = value;
    context["messages"] = conversation_;
    context["add_generation_prompt"] = true;
    const std::string prompt = template_.chat_template.render(context);
    EncodeOptions enc;
    enc.parse_special = true;  // the template writes special tokens as text
    const std::vector<int32_t> ids = m_.tokenizer->encode_with(prompt, enc);
    const std::vector<int> tokens(ids.begin(), ids.end());
    Generator& g = m_.loaded->generator();
    if (int64_t(tokens.size()) >= g.max_len())
      fail_input("--context", "the conversation no longer fits; /reset starts a new one",
                 "< " + std::to_string(g.max_len()) + " tokens", std::to_string(tokens.size()));
    SamplingParams params = m_.sampling;
    params.reuse_cache = true;
    params.seed = m_.sampling.seed + turn_++;
    std::string text;
    int prev = tokens.back();
    const int V = m_.tokenizer->vocab_size();
    g_interrupted = false;
    const GenerationStats stats = generate(g, tokens, m_.max_tokens, params, [&](int token) {
      if (g_interrupted) return false;
      for (int32_t stop : m_.stop_ids)
        if (token == stop) return false;
      if (token >= V) return false;  // a vocabulary padded beyond the tokenizer's
      const std::string piece = m_.tokenizer->decode_piece(prev, token);
      prev = token;
      text += piece;
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    std::printf("\n");
    std::fflush(stdout);
    conversation_.push_back({{"role", "assistant"}, {"content", text}});
    if (args_.show_stats)
      std::fprintf(stderr,
                   "kiln: %d tokens at %.1f tokens/s; prompt %d tokens (%d cached) at %.1f "
                   "tokens/s%s\n",
                   stats.generated_tokens, stats.decode_tokens_per_s(), stats.prompt_tokens,
                   stats.reused_tokens, stats.prefill_tokens_per_s(),
                   g_interrupted ? " (interrupted)" : "");
  }

 private:
  const ChatArgs& args_;
  GenerationModel& m_;
  const ChatTemplateSource& template_;
  nlohmann::ordered_json conversation_;
  uint64_t turn_ = 0;
};

int run_chat(const ChatArgs& a) {
  GenerationModel m = load_generation_model(a.flags);
  const std::string template_path = a.template_path.empty() ? a.flags.model : a.template_path;
  const ChatTemplateSource tmpl = load_chat_template(template_path, a.template_name);
  // The tokenizer's own end-of-turn token (tokenizer_config.json eos_token) ends a reply too.
  if (m.tokenizer->eos_id() >= 0) {
    bool known = false;
    for (int32_t id : m.stop_ids) known = known || id == m.tokenizer->eos_id();
    if (!known) m.stop_ids.push_back(m.tokenizer->eos_id());
  }
  Chat chat(a, m, tmpl);

  struct sigaction sa = {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a read at the prompt returns, and is retried below
  sigaction(SIGINT, &sa, nullptr);

  if (!a.messages.empty()) {
    nlohmann::ordered_json messages = read_json(a.messages);
    check_messages(messages, a.messages);
    chat.conversation() = std::move(messages);
    chat.reply();
    return 0;
  }

  const bool terminal = isatty(STDIN_FILENO);
  if (terminal)
    std::fprintf(stderr, "kiln chat: %s on %s. /reset starts over, /exit quits.\n",
                 m.source.description.c_str(), m.backend->name().c_str());
  std::string line;
  for (;;) {
    if (terminal) {
      std::fprintf(stderr, "> ");
      std::fflush(stderr);
    }
    g_interrupted = false;
    if (!std::getline(std::cin, line)) {
      if (g_interrupted && !std::cin.eof()) {  // Ctrl-C at the prompt: ignore it
        std::cin.clear();
        std::fprintf(stderr, "\n");
        continue;
      }
      break;
    }
    if (line == "/exit") break;
    if (line == "/reset") {
      chat.reset();
      if (terminal) std::fprintf(stderr, "(conversation reset)\n");
      continue;
    }
    if (line.empty()) continue;
    chat.conversation().push_back({{"role", "user"}, {"content", line}});
    try {
      chat.reply();
    } catch (const InputError& e) {
      chat.conversation().erase(chat.conversation().size() - 1);  // the turn did not happen
      std::fprintf(stderr, "kiln: error: %s\n", e.what());
      if (!terminal) return 2;  // a script learns that its conversation failed
    }
  }
  return 0;
}

RegisterCommand chat_command(
    {"chat", "Chat with a model through its chat template",
     [](CLI::App& sub) -> std::function<int()> {
       auto a = std::make_shared<ChatArgs>();
       add_generation_flags(sub, a->flags, "--max-tokens");
       sub.add_option("--system", a->system, "System message at the start of the conversation");
       sub.add_option("--messages", a->messages,
                      "Reply once to this conversation (a JSON list of {role, content})");
       sub.add_option("--chat-template", a->template_path,
                      "Model directory or tokenizer_config.json holding the chat template "
                      "(default: --model)");
       sub.add_option("--template-name", a->template_name,
                      "Which named template of the config (default: \"default\")");
       sub.add_flag("--stats", a->show_stats, "Print tokens/s after each reply (stderr)");
       return [a]() { return run_chat(*a); };
     }});

}  // namespace
}  // namespace kiln::cli
