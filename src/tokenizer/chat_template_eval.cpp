// Chat-template interpreter: expressions. Operator semantics follow
// @huggingface/jinja exactly (JS loose == on values, `+` concatenates when
// either side is a string, `%` is JS's remainder, `/` always gives a float),
// because the reference renderer's output is the contract.
#include "tokenizer/chat_template_eval.h"

#include <cmath>

namespace kiln::chat {

Value Env::lookup(const std::string& name) const {
  for (const Env* e = this; e; e = e->parent.get()) {
    auto it = e->vars.find(name);
    if (it != e->vars.end()) return it->second;
  }
  return Value::undefined();
}

void Interpreter::check_size(const Node& n, size_t bytes) const {
  if (bytes > limits_.max_output_bytes)
    fail(n, "template output too large (over " + std::to_string(limits_.max_output_bytes >> 20) +
                " MiB)");
}

void Interpreter::step(const Node& n, uint64_t count) {
  steps_ += count;
  if (steps_ > limits_.max_steps)
    fail(n, "template ran too long (over " + std::to_string(limits_.max_steps) + " steps)");
}

Value Interpreter::eval(const Node& n, const EnvPtr& env) {
  step(n);
  switch (n.kind) {
    case N::text:
    case N::string:
      return Value::string(n.str);
    case N::comment:
      return Value::null();
    case N::integer:
      return Value::integer(n.number);
    case N::floating:
      return Value::floating(n.number);
    case N::identifier:
      return env->lookup(n.str);
    case N::array:
    case N::tuple:
    case N::object:
      return literal(n, env);
    case N::member:
      return member(n, env);
    case N::call:
      return call(n, env);
    case N::unary:
      return unary(n, env);
    case N::binary:
      return binary(n, env);
    case N::filter:
      return apply_filter(*this, eval(*n.a[0], env), *n.a[1], env);
    case N::test:
      return Value::from_bool(run_test(*this, n, n.str, eval(*n.a[0], env)) != n.flag);
    case N::select:
      return truthy(eval(*n.a[1], env)) ? eval(*n.a[0], env) : Value::undefined();
    case N::ternary:
      return eval(*n.a[truthy(eval(*n.a[0], env)) ? 1 : 2], env);
    case N::if_:
      return Value::string(block(truthy(eval(*n.a[0], env)) ? n.body : n.alt, env));
    case N::for_:
      return for_loop(n, env);
    case N::set:
      return set(n, env);
    case N::macro:
      return macro(n, env);
    case N::call_block:
      return call_block(n, env);
    case N::filter_block:
      return apply_filter(*this, Value::string(block(n.body, env)), *n.a[0], env);
    case N::break_:
      throw LoopSignal{true};
    case N::continue_:
      throw LoopSignal{false};
    case N::slice:
    case N::kwarg:
    case N::spread:
    case N::kwspread:
      fail(n, "this expression is only allowed inside [] or a call");
  }
  fail(n, "unknown syntax node");
}

std::string Interpreter::block(const std::vector<NodePtr>& body, const EnvPtr& env) {
  std::string out;
  for (const NodePtr& statement : body) {
    const Value v = eval(*statement, env);
    if (v.kind == Kind::null || v.kind == Kind::undefined) continue;
    if (v.kind == Kind::function) fail(*statement, "cannot print a function or macro");
    out += display(v);
    check_size(*statement, out.size());
  }
  return out;
}

Value Interpreter::literal(const Node& n, const EnvPtr& env) {
  if (n.kind != N::object) {
    std::vector<Value> items;
    for (const NodePtr& x : n.a) items.push_back(eval(*x, env));
    return Value::array(std::move(items), n.kind == N::tuple ? Kind::tuple : Kind::array);
  }
  ObjectMap m;
  for (size_t i = 0; i + 1 < n.a.size(); i += 2) {
    const Value key = eval(*n.a[i], env);
    if (key.kind != Kind::string)
      fail(*n.a[i], std::string("object keys must be strings (got ") + type_name(key.kind) + ")");
    m.set(key.str, eval(*n.a[i + 1], env));
  }
  return Value::object(std::move(m));
}

Value Interpreter::member(const Node& n, const EnvPtr& env) {
  const Value object = eval(*n.a[0], env);
  const Node& prop = *n.a[1];
  if (n.flag && prop.kind == N::slice) return slice(prop, object, env);
  Value key;
  if (n.flag)
    key = eval(prop, env);
  else if (prop.kind == N::integer)
    key = Value::integer(prop.number);
  else
    key = Value::string(prop.str);
  const auto need_string = [&] {
    if (key.kind != Kind::string)
      fail(n, std::string("cannot look up a property with a ") + type_name(key.kind) + " key");
  };
  if (object.is_attr_container()) {
    need_string();
    if (const Value* v = object.map->find(key.str)) return *v;
    return object.kind == Kind::name_space ? Value::undefined()
                                           : builtin_member(*this, n, object, key.str);
  }
  if (object.is_array() || object.kind == Kind::string) {
    if (key.kind == Kind::integer) {
      // JS str.at(i) counts UTF-16 units: half of a surrogate pair comes
      // out as U+FFFD once the prompt is UTF-8.
      std::vector<std::string> units;
      if (object.kind == Kind::string)
        for (std::string& cp : code_points(object.str)) {
          const bool astral = static_cast<unsigned char>(cp[0]) >= 0xf0 && cp.size() == 4;
          units.push_back(astral ? "\xEF\xBF\xBD" : cp);
          if (astral) units.push_back("\xEF\xBF\xBD");
        }
      const double size = object.kind == Kind::string ? static_cast<double>(units.size())
                                                      : static_cast<double>(object.items->size());
      double i = std::trunc(key.number);
      if (i < 0) i += size;
      if (!(i >= 0 && i < size)) return Value::undefined();
      const size_t at = static_cast<size_t>(i);
      return object.kind == Kind::string ? Value::string(units[at]) : (*object.items)[at];
    }
    if (key.kind != Kind::string)
      fail(n, std::string("cannot index with a ") + type_name(key.kind));
    return builtin_member(*this, n, object, key.str);
  }
  need_string();
  return Value::undefined();  // numbers, booleans, none, undefined have no attributes
}

// Python slicing with the reference's clamping (slice() in its utils).
Value Interpreter::slice(const Node& n, const Value& object, const EnvPtr& env) {
  if (!object.is_array() && object.kind != Kind::string)
    fail(n, "only a list or a string can be sliced");
  double part[3];
  bool given[3];
  for (int k = 0; k < 3; ++k) {
    const Value v = n.a[k] ? eval(*n.a[k], env) : Value::undefined();
    if (v.kind != Kind::integer && v.kind != Kind::undefined)
      fail(n, "slice bounds must be integers");
    given[k] = v.kind == Kind::integer;
    part[k] = v.number;
  }
  std::vector<std::string> chars;
  if (object.kind == Kind::string) chars = code_points(object.str);
  const double len = object.kind == Kind::string ? static_cast<double>(chars.size())
                                                 : static_cast<double>(object.items->size());
  const double stride = given[2] ? part[2] : 1;
  double start, stop;
  if (stride >= 0) {
    start = given[0] ? part[0] : 0;
    stop = given[1] ? part[1] : len;
    start = start < 0 ? std::max(len + start, 0.0) : std::min(start, len);
    stop = stop < 0 ? std::max(len + stop, 0.0) : std::min(stop, len);
  } else {
    start = given[0] ? part[0] : len - 1;
    stop = given[1] ? part[1] : -1;
    start = start < 0 ? std::max(len + start, -1.0) : std::min(start, len - 1);
    stop = stop < -1 ? std::max(len + stop, -1.0) : std::min(stop, len - 1);
  }
  const double dir = stride > 0 ? 1 : (stride < 0 ? -1 : 0);
  std::vector<Value> items;
  std::string text;
  for (double i = start; dir * i < dir * stop; i += stride) {
    step(n);
    const size_t at = static_cast<size_t>(i);
    if (object.kind == Kind::string)
      text += chars[at];
    else
      items.push_back((*object.items)[at]);
  }
  if (object.kind == Kind::string) return Value::string(std::move(text));
  return Value::array(std::move(items));
}

std::vector<Value> Interpreter::arguments(const std::vector<NodePtr>& args, const EnvPtr& env,
                                          bool always_kwargs) {
  std::vector<Value> positional;
  ObjectMap kwargs;
  for (const NodePtr& a : args) {
    if (a->kind == N::spread) {
      const Value v = eval(*a->a[0], env);
      if (!v.is_array()) fail(*a, std::string("cannot unpack ") + type_name(v.kind));
      positional.insert(positional.end(), v.items->begin(), v.items->end());
    } else if (a->kind != N::kwarg && a->kind != N::kwspread) {
      positional.push_back(eval(*a, env));
    }
  }
  const auto add = [&](const Node& at, const std::string& key, Value v) {
    if (kwargs.find(key)) fail(at, "keyword argument '" + key + "' given twice");
    kwargs.set(key, std::move(v));
  };
  for (const NodePtr& a : args) {
    if (a->kind == N::kwarg) add(*a, a->str, eval(*a->a[0], env));
    if (a->kind != N::kwspread) continue;
    const Value v = eval(*a->a[0], env);
    if (!v.is_object()) fail(*a, "the argument after ** must be a mapping");
    for (const auto& [key, value] : v.map->entries()) add(*a, key, value);
  }
  if (always_kwargs || kwargs.size() > 0)
    positional.push_back(Value::object(std::move(kwargs), Kind::kwargs));
  return positional;
}

Value Interpreter::call(const Node& n, const EnvPtr& env) {
  std::vector<Value> args = arguments(n.b, env);
  const Value fn = eval(*n.a[0], env);
  if (fn.kind != Kind::function)
    fail(n, std::string("cannot call a ") + type_name(fn.kind) + " (not a function)");
  const Node* outer = call_site_;
  call_site_ = &n;
  Value result = (*fn.fn)(args, env);
  call_site_ = outer;  // an exception ends the render, so no restore is needed then
  return result;
}

Value Interpreter::unary(const Node& n, const EnvPtr& env) {
  const Value v = eval(*n.a[0], env);
  if (n.str == "not") return Value::from_bool(!truthy(v));
  if (!v.is_number() && v.kind != Kind::boolean)
    fail(n, "unary " + n.str + " needs a number (got " + type_name(v.kind) + ")");
  const double x = v.kind == Kind::boolean ? (v.boolean ? 1 : 0) : v.number;
  const double r = n.str == "-" ? -x : x;
  return v.kind == Kind::floating ? Value::floating(r) : Value::integer(r);
}

}  // namespace kiln::chat
