// Chat-template filters (`x | f`), with @huggingface/jinja's dispatch: a bare
// filter name is looked up by the operand's type, a called one (`f(...)`) by
// name first. A filter the reference lacks for that type is an error, with
// the template position, rather than a silent difference.
#include <algorithm>
#include <cmath>

#include "tokenizer/chat_template_eval.h"

namespace kiln::chat {

std::string indent_text(const std::string& s, const std::string& pad, bool first, bool blank) {
  std::string out;
  size_t start = 0, line = 0;
  while (true) {
    const size_t nl = s.find('\n', start);
    const std::string x = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (line) out += '\n';
    out += ((!first && line == 0) || (!blank && x.empty())) ? x : pad + x;
    if (nl == std::string::npos) break;
    start = nl + 1;
    ++line;
  }
  return out;
}

std::string join_part_value(const Value& v) {
  return v.kind == Kind::null || v.kind == Kind::undefined ? "" : js_string(v);
}

namespace {

Value bare_array_filter(Interpreter& in, const Node& at, const Value& v, const std::string& f) {
  const std::vector<Value>& items = *v.items;
  if (f == "list") return v;
  if (f == "first" || f == "last") {
    if (items.empty()) in.fail(at, "\"" + f + "\" of an empty list");
    return f == "first" ? items.front() : items.back();
  }
  if (f == "length") return Value::integer(static_cast<double>(items.size()));
  if (f == "reverse") return Value::array({items.rbegin(), items.rend()});
  if (f == "join") {
    std::string out;
    for (const Value& x : items) out += join_part_value(x);
    return Value::string(out);
  }
  if (f == "string") return Value::string(to_json(v, {}, 0, false));
  if (f == "unique") {
    std::vector<Value> out;
    for (const Value& x : items) {
      bool seen = false;
      for (const Value& y : out) seen = seen || strict_equal(x, y);
      if (!seen) out.push_back(x);
    }
    return Value::array(std::move(out));
  }
  if (f == "sort") return sort_values(in, at, v, false, false, nullptr);
  in.fail(at, "unknown filter \"" + f + "\" for a list");
}

Value bare_string_filter(Interpreter& in, const Node& at, const Value& v, const std::string& f) {
  if (f == "length" || f == "upper" || f == "lower" || f == "title" || f == "capitalize") {
    const Value m = string_method(in, at, v.str, f);
    if (m.kind != Kind::function) return m;
    std::vector<Value> none;
    return (*m.fn)(none, nullptr);
  }
  if (f == "trim") return Value::string(js_trim(v.str, true, true));
  if (f == "indent") return Value::string(indent_text(v.str, "    ", false, false));
  if (f == "join" || f == "string") return v;
  if (f == "int") {
    const double x = js_parse_int(v.str);
    return Value::integer(std::isnan(x) ? 0 : x);
  }
  if (f == "float") {
    const double x = js_parse_float(v.str);
    return Value::floating(std::isnan(x) ? 0 : x);
  }
  in.fail(at, "unknown filter \"" + f + "\" for a string");
}

Value bare_filter(Interpreter& in, const Node& at, const Value& v, const std::string& f) {
  if (f == "safe") return v;
  if (f == "tojson") {
    if (v.kind == Kind::function) in.fail(at, "tojson cannot convert a function");
    return Value::string(to_json(v, {}));
  }
  if (v.is_array()) return bare_array_filter(in, at, v, f);
  if (v.kind == Kind::string) return bare_string_filter(in, at, v, f);
  if (v.is_number()) {
    const bool fl = v.kind == Kind::floating;
    if (f == "abs")
      return fl ? Value::floating(std::fabs(v.number)) : Value::integer(std::fabs(v.number));
    if (f == "int") return Value::integer(std::floor(v.number));
    if (f == "float") return Value::floating(v.number);
    if (f == "string") return Value::string(display(v));
    in.fail(at, "unknown filter \"" + f + "\" for a number");
  }
  if (v.is_object()) {
    if (f == "length") return Value::integer(static_cast<double>(v.map->size()));
    const Value m = object_method(in, at, v, f);
    if (m.kind != Kind::function) in.fail(at, "unknown filter \"" + f + "\" for a mapping");
    std::vector<Value> none;
    return (*m.fn)(none, nullptr);
  }
  if (v.kind == Kind::boolean) {
    if (f == "bool") return v;
    if (f == "int") return Value::integer(v.boolean ? 1 : 0);
    if (f == "float") return Value::floating(v.boolean ? 1 : 0);
    if (f == "string") return Value::string(v.boolean ? "true" : "false");
    in.fail(at, "unknown filter \"" + f + "\" for a boolean");
  }
  in.fail(at, "cannot apply filter \"" + f + "\" to " + type_name(v.kind));
}

}  // namespace

Value apply_filter(Interpreter& in, Value operand, const Node& filter, const EnvPtr& env) {
  if (filter.kind == N::identifier) return bare_filter(in, filter, operand, filter.str);
  if (filter.kind != N::call || filter.a[0]->kind != N::identifier)
    in.fail(filter, "expected a filter name");
  return called_filter(in, operand, filter, env);
}

}  // namespace kiln::chat
