// Chat-template tests (`x is defined`), dict methods, and the global names
// every template sees: true/false/none (and Python spellings), namespace(),
// range(), raise_exception(), strftime_now().
#include <cmath>

#include "tokenizer/chat_template_eval.h"

namespace kiln::chat {
namespace {

bool all_case(const std::string& s, bool upper) { return js_case(s, upper) == s; }

Value dictsort(Interpreter& in, const Node& at, const Value& object, std::vector<Value>& args) {
  std::vector<Value> positional;
  const Value* kw = nullptr;
  for (const Value& a : args) {
    if (a.kind == Kind::kwargs)
      kw = &a;
    else
      positional.push_back(a);
  }
  const auto get = [&](size_t i, const char* name, Value fallback) {
    if (i < positional.size()) return positional[i];
    if (kw && kw->map->find(name)) return *kw->map->find(name);
    return fallback;
  };
  const Value cs = get(0, "case_sensitive", Value::from_bool(false));
  const Value by = get(1, "by", Value::string("key"));
  const Value reverse = get(2, "reverse", Value::from_bool(false));
  if (cs.kind != Kind::boolean || reverse.kind != Kind::boolean)
    in.fail(at, "dictsort case_sensitive/reverse must be booleans");
  if (by.kind != Kind::string || (by.str != "key" && by.str != "value"))
    in.fail(at, "dictsort by must be 'key' or 'value'");
  std::vector<Value> pairs;
  for (const auto& [key, value] : object.map->entries())
    pairs.push_back(Value::array({Value::string(key), value}));
  const Value index = Value::string(by.str == "key" ? "0" : "1");
  return sort_values(in, at, Value::array(std::move(pairs)), reverse.boolean, cs.boolean, &index);
}

}  // namespace

bool run_test(Interpreter& in, const Node& at, const std::string& name, const Value& v,
              const Value* arg) {
  const Kind k = v.kind;
  if (name == "boolean") return k == Kind::boolean;
  if (name == "callable") return k == Kind::function;
  if (name == "odd" || name == "even") {
    if (k != Kind::integer) in.fail(at, "cannot test " + name + " on " + type_name(k));
    return (std::fmod(v.number, 2) != 0) == (name == "odd");
  }
  if (name == "false") return k == Kind::boolean && !v.boolean;
  if (name == "true") return k == Kind::boolean && v.boolean;
  if (name == "none") return k == Kind::null;
  if (name == "string") return k == Kind::string;
  if (name == "number") return v.is_number();
  if (name == "integer") return k == Kind::integer;
  if (name == "iterable") return k == Kind::array || k == Kind::string;  // not tuples
  if (name == "mapping") return v.is_object();
  if (name == "sequence") return v.is_array() || v.is_object() || k == Kind::string;
  if (name == "lower" || name == "upper")
    return k == Kind::string && all_case(v.str, name == "upper");
  if (name == "defined") return k != Kind::undefined;
  if (name == "undefined") return k == Kind::undefined;
  if (name == "equalto" || name == "eq") return arg && strict_equal(v, *arg);
  in.fail(at, "unknown test \"" + name + "\"");
}

Value object_method(Interpreter& in, const Node& at, const Value& object, const std::string& name) {
  if (name != "get" && name != "items" && name != "keys" && name != "values" && name != "dictsort")
    return Value::undefined();
  Interpreter* ip = &in;
  const Node* node = &at;
  return Value::function([ip, node, object, name](std::vector<Value>& args, const EnvPtr&) {
    const auto& entries = object.map->entries();
    std::vector<Value> out;
    if (name == "get") {
      if (args.empty() || args[0].kind != Kind::string) ip->fail(*node, "get() needs a string key");
      if (const Value* v = object.map->find(args[0].str)) return *v;
      return args.size() > 1 ? args[1] : Value::null();
    }
    if (name == "dictsort") return dictsort(*ip, *node, object, args);
    for (const auto& [key, value] : entries) {
      if (name == "items") out.push_back(Value::array({Value::string(key), value}));
      if (name == "keys") out.push_back(Value::string(key));
      if (name == "values") out.push_back(value);
    }
    return Value::array(std::move(out));
  });
}

Value builtin_member(Interpreter& in, const Node& at, const Value& object,
                     const std::string& name) {
  if (object.is_object()) return object_method(in, at, object, name);
  if (object.is_array())
    return name == "length" ? Value::integer(static_cast<double>(object.items->size()))
                            : Value::undefined();
  if (object.kind == Kind::string) return string_method(in, at, object.str, name);
  return Value::undefined();
}

namespace {

// The reference's strftime: %Y %m %d %b %B %H %M %%, English month names.
std::string strftime_js(const std::tm& t, const std::string& format) {
  static const char* kMonths[] = {"January",   "February", "March",    "April",
                                  "May",       "June",     "July",     "August",
                                  "September", "October",  "November", "December"};
  const auto pad2 = [](int n) {
    std::string s = std::to_string(n);
    if (n >= 0 && n < 10) s.insert(s.begin(), '0');
    return s;
  };
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    const char c = i + 1 < format.size() && format[i] == '%' ? format[i + 1] : '\0';
    const int month = ((t.tm_mon % 12) + 12) % 12;
    std::string r;
    switch (c) {
      case 'Y':
        r = std::to_string(t.tm_year + 1900);
        break;
      case 'm':
        r = pad2(month + 1);
        break;
      case 'd':
        r = pad2(t.tm_mday);
        break;
      case 'b':
        r = std::string(kMonths[month]).substr(0, 3);
        break;
      case 'B':
        r = kMonths[month];
        break;
      case 'H':
        r = pad2(t.tm_hour);
        break;
      case 'M':
        r = pad2(t.tm_min);
        break;
      case '%':
        r = "%";
        break;
      default:
        out += format[i];
        continue;
    }
    out += r;
    ++i;
  }
  return out;
}

Value make_namespace(Interpreter& in, const Node& at, std::vector<Value>& args) {
  ObjectMap m;
  const Value* kw = !args.empty() && args.back().kind == Kind::kwargs ? &args.back() : nullptr;
  const size_t positional = args.size() - (kw ? 1 : 0);
  if (positional > 1) in.fail(at, "namespace() takes at most one positional argument");
  if (positional == 1) {
    const Value& src = args[0];
    if (src.is_object()) {
      for (const auto& [k, v] : src.map->entries()) m.set(k, v);
    } else if (src.is_array()) {
      for (const Value& pair : *src.items) {
        if (!pair.is_array() || pair.items->size() != 2 || (*pair.items)[0].kind != Kind::string)
          in.fail(at, "namespace() expects [key, value] pairs with string keys");
        m.set((*pair.items)[0].str, (*pair.items)[1]);
      }
    } else {
      in.fail(at, std::string("namespace() cannot read a ") + type_name(src.kind));
    }
  }
  if (kw)
    for (const auto& [k, v] : kw->map->entries()) m.set(k, v);
  Value ns = Value::object(std::move(m), Kind::name_space);
  in.track_namespace(ns.map);
  return ns;
}

Value range(Interpreter& in, const Node& at, const std::vector<Value>& args) {
  for (const Value& a : args)
    if (!a.is_number()) in.fail(at, "range() needs integer arguments");
  if (args.empty()) return Value::array({});  // the reference: 0 < undefined is false
  if (args.size() > 3) in.fail(at, "range() takes at most 3 arguments");
  double start = 0, stop = args[0].number, step = 1;
  if (args.size() > 1) {
    start = args[0].number;
    stop = args[1].number;
  }
  if (args.size() > 2) step = args[2].number;
  if (step == 0) in.fail(at, "range() step must not be zero");
  std::vector<Value> out;
  for (double i = start; step > 0 ? i < stop : i > stop; i += step) {
    in.step(at);
    out.push_back(Value::integer(i));
  }
  return Value::array(std::move(out));
}

}  // namespace

void add_globals(Interpreter& in, Env& env, const Node& at) {
  Interpreter* ip = &in;
  const Node* node = &at;
  env.set("namespace", Value::function([ip, node](std::vector<Value>& args, const EnvPtr&) {
            return make_namespace(*ip, *node, args);
          }));
  for (const char* t : {"true", "True"}) env.set(t, Value::from_bool(true));
  for (const char* f : {"false", "False"}) env.set(f, Value::from_bool(false));
  for (const char* n : {"none", "None"}) env.set(n, Value::null());
  env.set("raise_exception", Value::function([ip, node](std::vector<Value>& args, const EnvPtr&) {
            const std::string msg = args.empty() ? "" : js_string(args[0]);
            ip->fail(ip->call_site() ? *ip->call_site() : *node, "raise_exception: " + msg);
            return Value::undefined();
          }));
  env.set("range", Value::function([ip, node](std::vector<Value>& args, const EnvPtr&) {
            return range(*ip, *node, args);
          }));
  env.set("strftime_now", Value::function([ip, node](std::vector<Value>& args, const EnvPtr&) {
            if (args.empty() || args[0].kind != Kind::string)
              ip->fail(*node, "strftime_now() needs a format string");
            return Value::string(strftime_js(ip->now(), args[0].str));
          }));
}

}  // namespace kiln::chat
