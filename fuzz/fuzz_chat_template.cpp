// libFuzzer target: chat templates (the Jinja subset of tokenizer_config.json's
// "chat_template"), through ChatTemplate::parse and render with a fixed small
// conversation. Any template text must either render or end in InputError:
// no crash, no other exception, no runaway (the render limits are small here
// so a hostile template stops within the fuzzer's per-input timeout).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz_common.h"
#include "tokenizer/chat_template.h"

using namespace kiln;

namespace {

const nlohmann::ordered_json& context() {
  static const auto* ctx = new nlohmann::ordered_json(nlohmann::ordered_json::parse(R"J({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi \u00e9 <think>"},
      {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHello", "reasoning_content": "hm"},
      {"role": "assistant", "content": null, "tool_calls": [{"type": "function",
        "function": {"name": "f", "arguments": {"x": 1, "y": [true, null, 2.5]}}}]},
      {"role": "tool", "content": "{\"ok\": 1}"}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true, "enable_thinking": false,
    "bos_token": "<s>", "eos_token": "</s>"})J"));
  return *ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  fuzz::run_reader([&] {
    const ChatTemplate t = ChatTemplate::parse(source, "fuzz: chat_template");
    ChatRenderOptions options;
    options.now = std::tm{};
    options.limits.max_output_bytes = 1u << 20;
    options.limits.max_steps = 200'000;
    options.limits.max_call_depth = 50;
    t.render(context(), options);
  });
  return 0;
}
