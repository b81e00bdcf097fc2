// Chat-template interpreter: binary operators and statements (set, for,
// macro, call blocks), in @huggingface/jinja's order of checks.
#include <cmath>

#include "tokenizer/chat_template_eval.h"

namespace kiln::chat {
namespace {

bool numeric_like(const Value& v) { return v.is_number() || v.kind == Kind::boolean; }
double numeric(const Value& v) { return v.kind == Kind::boolean ? (v.boolean ? 1 : 0) : v.number; }

// Number op number; false when the operator is not one of these.
bool arithmetic(const std::string& op, const Value& l, const Value& r, Value* out) {
  const double a = l.number, b = r.number;
  const bool fl = l.kind == Kind::floating || r.kind == Kind::floating;
  const auto num = [&](double x) { return fl ? Value::floating(x) : Value::integer(x); };
  if (op == "+")
    *out = num(a + b);
  else if (op == "-")
    *out = num(a - b);
  else if (op == "*")
    *out = num(a * b);
  else if (op == "/")
    *out = Value::floating(a / b);
  else if (op == "//")
    *out = num(std::floor(a / b));
  else if (op == "%")
    *out = num(std::fmod(a, b));
  else if (op == "<")
    *out = Value::from_bool(a < b);
  else if (op == ">")
    *out = Value::from_bool(a > b);
  else if (op == ">=")
    *out = Value::from_bool(a >= b);
  else if (op == "<=")
    *out = Value::from_bool(a <= b);
  else
    return false;
  return true;
}

}  // namespace

Value Interpreter::binary(const Node& n, const EnvPtr& env) {
  const std::string& op = n.str;
  const Value left = eval(*n.a[0], env);
  if (op == "and") return truthy(left) ? eval(*n.a[1], env) : left;
  if (op == "or") return truthy(left) ? left : eval(*n.a[1], env);
  const Value right = eval(*n.a[1], env);
  if (op == "==") return Value::from_bool(loose_equal(left, right));
  if (op == "!=") return Value::from_bool(!loose_equal(left, right));
  const bool in = op == "in" || op == "not in";
  if (left.kind == Kind::undefined || right.kind == Kind::undefined) {
    if (right.kind == Kind::undefined && in) return Value::from_bool(op == "not in");
    fail(n, "cannot apply \"" + op + "\" to an undefined value");
  }
  if (left.kind == Kind::null || right.kind == Kind::null)
    fail(n, "cannot apply \"" + op + "\" to none");
  // The reference would splice in the JavaScript source of the function.
  if ((op == "~" || op == "+") && (left.kind == Kind::function || right.kind == Kind::function))
    fail(n, "cannot use a function or macro as a value with \"" + op + "\"");
  if (op == "~") {
    std::string s = js_string(left) + js_string(right);
    check_size(n, s.size());
    return Value::string(std::move(s));
  }
  if (op == "**" && numeric_like(left) && numeric_like(right)) {
    const double a = numeric(left), b = numeric(right);
    if (a == 0 && b < 0) fail(n, "0.0 cannot be raised to a negative power");
    const double r = std::pow(a, b);
    if (!std::isfinite(r)) fail(n, "the power is not a finite number");
    const bool fl = left.kind == Kind::floating || right.kind == Kind::floating || b < 0;
    return fl ? Value::floating(r) : Value::integer(r);
  }
  Value out;
  if (left.is_number() && right.is_number()) {
    if (arithmetic(op, left, right, &out)) return out;
  } else if (left.is_array() && right.is_array()) {
    if (op == "+") {
      std::vector<Value> items = *left.items;
      items.insert(items.end(), right.items->begin(), right.items->end());
      step(n, items.size());
      return Value::array(std::move(items));
    }
  } else if (right.is_array() && in) {
    bool member = false;
    for (const Value& x : *right.items) member = member || strict_equal(x, left);
    return Value::from_bool(member == (op == "in"));
  }
  if ((left.kind == Kind::string || right.kind == Kind::string) && op == "+") {
    std::string s = js_string(left) + js_string(right);
    check_size(n, s.size());
    return Value::string(std::move(s));
  }
  if (left.kind == Kind::string && right.kind == Kind::string && in)
    return Value::from_bool((right.str.find(left.str) != std::string::npos) == (op == "in"));
  if (left.kind == Kind::string && right.is_object() && in)
    return Value::from_bool((right.map->find(left.str) != nullptr) == (op == "in"));
  fail(n, "unknown operator \"" + op + "\" between " + type_name(left.kind) + " and " +
              type_name(right.kind));
}

Value Interpreter::set(const Node& n, const EnvPtr& env) {
  Value rhs = n.a[1] ? eval(*n.a[1], env) : Value::string(block(n.body, env));
  const Node& target = *n.a[0];
  if (target.kind == N::identifier) {
    env->set(target.str, std::move(rhs));
  } else if (target.kind == N::tuple) {
    if (!rhs.is_array()) fail(n, std::string("cannot unpack ") + type_name(rhs.kind));
    if (rhs.items->size() != target.a.size())
      fail(n, std::string("too ") + (target.a.size() > rhs.items->size() ? "few" : "many") +
                  " items to unpack");
    for (size_t i = 0; i < target.a.size(); ++i) {
      if (target.a[i]->kind != N::identifier) fail(n, "can only unpack into names");
      env->set(target.a[i]->str, (*rhs.items)[i]);
    }
  } else if (target.kind == N::member) {
    const Value object = eval(*target.a[0], env);
    if (object.kind != Kind::name_space)
      fail(n, "can only assign attributes of a namespace() object");
    if (target.a[1]->kind != N::identifier) fail(n, "expected a name after \".\"");
    object.map->set(target.a[1]->str, std::move(rhs));
  } else {
    fail(n, "cannot assign to this expression");
  }
  return Value::null();
}

Value Interpreter::for_loop(const Node& n, const EnvPtr& env) {
  auto scope = std::make_shared<Env>();
  scope->parent = env;
  Value iterable = eval(*n.a[1], scope);
  if (iterable.is_object()) {
    std::vector<Value> keys;
    for (const auto& [key, value] : iterable.map->entries()) keys.push_back(Value::string(key));
    iterable = Value::array(std::move(keys));
  }
  if (!iterable.is_array())
    fail(*n.a[1], std::string("cannot loop over a ") + type_name(iterable.kind));
  const Node& target = *n.a[0];
  const auto bind = [&](const EnvPtr& e, const Value& item) {
    if (target.kind == N::identifier) return e->set(target.str, item);
    if (!item.is_array()) fail(n, std::string("cannot unpack ") + type_name(item.kind));
    if (item.items->size() != target.a.size())
      fail(n, std::string("too ") + (target.a.size() > item.items->size() ? "few" : "many") +
                  " items to unpack");
    for (size_t j = 0; j < target.a.size(); ++j) {
      if (target.a[j]->kind != N::identifier) fail(n, "can only unpack into names");
      e->set(target.a[j]->str, (*item.items)[j]);
    }
  };
  std::vector<Value> items;
  for (const Value& item : *iterable.items) {
    step(n);
    if (n.a[2]) {  // for x in xs if cond: the test sees x in its own scope
      auto test_scope = std::make_shared<Env>();
      test_scope->parent = scope;
      bind(test_scope, item);
      if (!truthy(eval(*n.a[2], test_scope))) continue;
    }
    items.push_back(item);
  }
  std::string out;
  bool none_ran = true;
  const double count = static_cast<double>(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    ObjectMap loop;
    const double k = static_cast<double>(i);
    loop.set("index", Value::integer(k + 1));
    loop.set("index0", Value::integer(k));
    loop.set("revindex", Value::integer(count - k));
    loop.set("revindex0", Value::integer(count - k - 1));
    loop.set("first", Value::from_bool(i == 0));
    loop.set("last", Value::from_bool(i + 1 == items.size()));
    loop.set("length", Value::integer(count));
    loop.set("previtem", i > 0 ? items[i - 1] : Value::undefined());
    loop.set("nextitem", i + 1 < items.size() ? items[i + 1] : Value::undefined());
    scope->set("loop", Value::object(std::move(loop)));
    bind(scope, items[i]);
    try {
      out += block(n.body, scope);
      check_size(n, out.size());
    } catch (const LoopSignal& signal) {
      if (signal.is_break) break;
      continue;
    }
    none_ran = false;  // as the reference: a loop ended by break/continue "ran" no body
  }
  if (none_ran) out += block(n.alt, scope);
  return Value::string(std::move(out));
}

}  // namespace kiln::chat
