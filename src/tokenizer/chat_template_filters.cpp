// Chat-template filters called with arguments: tojson(indent=...), join(sep),
// default(v), int/float(default), sort/selectattr/rejectattr/map, indent,
// replace, and dict methods used as filters.
#include <algorithm>
#include <cmath>

#include "tokenizer/chat_template_eval.h"

namespace kiln::chat {
namespace {

const Value* kwarg(const std::vector<Value>& args, const char* name) {
  if (args.empty() || args.back().kind != Kind::kwargs) return nullptr;
  return args.back().map->find(name);
}
// Positional argument i (the kwargs object does not count), else keyword, else fallback.
Value arg(const std::vector<Value>& args, size_t i, const char* name, Value fallback) {
  const size_t positional = args.size() - (!args.empty() && args.back().kind == Kind::kwargs);
  if (i < positional) return args[i];
  if (const Value* v = kwarg(args, name)) return *v;
  return fallback;
}

int compare(Interpreter& in, const Node& at, const Value& a, const Value& b, bool case_sensitive) {
  const auto fail = [&] {
    in.fail(at, std::string("cannot compare ") + type_name(a.kind) + " with " + type_name(b.kind));
  };
  if (a.kind == Kind::null && b.kind == Kind::null) return 0;
  if (a.kind == Kind::null || b.kind == Kind::null) fail();
  if (a.kind == Kind::undefined && b.kind == Kind::undefined) return 0;
  if (a.kind == Kind::undefined || b.kind == Kind::undefined) fail();
  const auto num_like = [](const Value& v) { return v.is_number() || v.kind == Kind::boolean; };
  if (num_like(a) && num_like(b)) {
    const double x = a.kind == Kind::boolean ? a.boolean : a.number;
    const double y = b.kind == Kind::boolean ? b.boolean : b.number;
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.kind != b.kind || a.kind != Kind::string) fail();
  std::string x = a.str, y = b.str;
  if (!case_sensitive) {
    for (char& c : x) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (char& c : y) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return x < y ? -1 : (x > y ? 1 : 0);
}

// "a.b.0": keys of mappings/namespaces and list indices.
Value attribute_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? dot : dot - start);
    if (v.is_attr_container()) {
      const Value* x = v.map->find(part);
      v = x ? *x : Value::undefined();
    } else if (v.is_array()) {
      const double i = js_parse_int(part);
      if (std::isnan(i) || i < 0 || i >= static_cast<double>(v.items->size()))
        return Value::undefined();
      v = (*v.items)[static_cast<size_t>(i)];
    } else {
      return Value::undefined();
    }
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

Value tojson(Interpreter& in, const Node& at, const Value& v, const std::vector<Value>& args) {
  JsonOptions o;
  const Value* indent = kwarg(args, "indent");
  if (indent && indent->kind != Kind::integer && indent->kind != Kind::null)
    in.fail(at, "tojson indent must be an integer");
  if (indent && indent->kind == Kind::integer) {
    if (indent->number < 0 || indent->number > 64) in.fail(at, "tojson indent out of range");
    o.indent = static_cast<int>(indent->number);
  }
  for (const char* flag : {"ensure_ascii", "sort_keys"}) {
    const Value* f = kwarg(args, flag);
    if (f && f->kind != Kind::boolean)
      in.fail(at, std::string("tojson ") + flag + " must be a boolean");
    if (f) (flag[0] == 'e' ? o.ensure_ascii : o.sort_keys) = f->boolean;
  }
  if (const Value* sep = kwarg(args, "separators"); sep && sep->kind != Kind::null) {
    if (!sep->is_array() || sep->items->size() != 2 || (*sep->items)[0].kind != Kind::string ||
        (*sep->items)[1].kind != Kind::string)
      in.fail(at, "tojson separators must be a pair of strings");
    o.has_separators = true;
    o.item_separator = (*sep->items)[0].str;
    o.key_separator = (*sep->items)[1].str;
  }
  if (v.kind == Kind::function) in.fail(at, "tojson cannot convert a function");
  std::string out = to_json(v, o);
  in.check_size(at, out.size());
  return Value::string(std::move(out));
}

Value select_attr(Interpreter& in, const Node& call, const Value& list, bool select,
                  const EnvPtr& env) {
  for (const Value& item : *list.items)
    if (!item.is_attr_container()) in.fail(call, "selectattr/rejectattr need a list of mappings");
  for (const NodePtr& a : call.b)
    if (a->kind != N::string)
      in.fail(*a, "selectattr/rejectattr arguments must be string literals");
  if (call.b.empty()) in.fail(call, "selectattr/rejectattr need an attribute name");
  const std::string attr = call.b[0]->str;
  const Value value = call.b.size() > 2 ? Value::string(call.b[2]->str) : Value::undefined();
  std::vector<Value> out;
  for (const Value& item : *list.items) {
    const Value* a = item.map->find(attr);
    bool hit = false;
    if (a) hit = call.b.size() > 1 ? run_test(in, call, call.b[1]->str, *a, &value) : truthy(*a);
    if (hit == select) out.push_back(item);
  }
  return Value::array(std::move(out));
}

Value list_filter(Interpreter& in, const Node& call, const std::string& f, const Value& v,
                  const std::vector<Value>& args, const EnvPtr& env) {
  if (f == "sort") {
    const Value reverse = arg(args, 0, "reverse", Value::from_bool(false));
    const Value cs = arg(args, 1, "case_sensitive", Value::from_bool(false));
    const Value attr = arg(args, 2, "attribute", Value::null());
    if (reverse.kind != Kind::boolean || cs.kind != Kind::boolean)
      in.fail(call, "sort reverse/case_sensitive must be booleans");
    if (attr.kind != Kind::string && attr.kind != Kind::integer && attr.kind != Kind::null)
      in.fail(call, "sort attribute must be a string, an integer or none");
    return sort_values(in, call, v, reverse.boolean, cs.boolean,
                       attr.kind == Kind::null ? nullptr : &attr);
  }
  if (f == "selectattr" || f == "rejectattr")
    return select_attr(in, call, v, f == "selectattr", env);
  if (f == "map") {
    const Value* attr = kwarg(args, "attribute");
    if (!attr) in.fail(call, "map is supported with attribute= only");
    if (attr->kind != Kind::string) in.fail(call, "map attribute must be a string");
    const Value* fallback = kwarg(args, "default");
    std::vector<Value> out;
    for (const Value& item : *v.items) {
      if (!item.is_attr_container()) in.fail(call, "map needs a list of mappings");
      Value x = attribute_path(item, attr->str);
      out.push_back(x.kind == Kind::undefined && fallback ? *fallback : x);
    }
    return Value::array(std::move(out));
  }
  in.fail(call, "unknown filter \"" + f + "\" for a list");
}

}  // namespace

Value sort_values(Interpreter& in, const Node& at, const Value& list, bool reverse,
                  bool case_sensitive, const Value* attribute) {
  std::vector<Value> items = *list.items;
  const std::string path =
      attribute ? (attribute->kind == Kind::string ? attribute->str : js_number(attribute->number))
                : "";
  const auto key = [&](const Value& v) { return attribute ? attribute_path(v, path) : v; };
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    const int c = compare(in, at, key(a), key(b), case_sensitive);
    return reverse ? c > 0 : c < 0;
  });
  return Value::array(std::move(items));
}

namespace {

Value join_filter(Interpreter& in, const Node& call, const Value& v,
                  const std::vector<Value>& args) {
  if (v.kind != Kind::string && !v.is_array())
    in.fail(call, std::string("cannot join ") + type_name(v.kind));
  const Value sep = arg(args, 0, "separator", Value::string(""));
  if (sep.kind != Kind::string) in.fail(call, "join separator must be a string");
  std::string out;
  if (v.kind == Kind::string) {
    const auto chars = code_points(v.str);
    for (size_t i = 0; i < chars.size(); ++i) out += (i ? sep.str : "") + chars[i];
  } else {
    for (size_t i = 0; i < v.items->size(); ++i)
      out += (i ? sep.str : "") + join_part_value((*v.items)[i]);
  }
  in.check_size(call, out.size());
  return Value::string(std::move(out));
}

// int(default) / float(default)
Value number_filter(Interpreter& in, const Node& call, bool is_int, const Value& v,
                    const std::vector<Value>& args) {
  const Value fallback = arg(args, 0, "default", is_int ? Value::integer(0) : Value::floating(0));
  if (v.kind == Kind::string) {
    const double x = is_int ? js_parse_int(v.str) : js_parse_float(v.str);
    return std::isnan(x) ? fallback : (is_int ? Value::integer(x) : Value::floating(x));
  }
  if (v.is_number()) return v;
  if (v.kind == Kind::boolean)
    return is_int ? Value::integer(v.boolean) : Value::floating(v.boolean);
  in.fail(call, std::string("cannot apply filter \"") + (is_int ? "int" : "float") + "\" to " +
                    type_name(v.kind));
}

Value default_filter(Interpreter& in, const Node& call, const Value& v,
                     const std::vector<Value>& args) {
  const size_t positional = args.size() - (!args.empty() && args.back().kind == Kind::kwargs);
  const Value fallback = positional > 0 ? args[0] : Value::string("");
  const Value boolean = arg(args, 1, "boolean", Value::from_bool(false));
  if (boolean.kind != Kind::boolean) in.fail(call, "default's boolean flag must be a boolean");
  if (v.kind == Kind::undefined || (boolean.boolean && !truthy(v))) return fallback;
  return v;
}

Value string_filter(Interpreter& in, const Node& call, const std::string& f, const Value& v,
                    std::vector<Value>& args, const EnvPtr& env) {
  if (f == "indent") {
    const Value width = arg(args, 0, "width", Value::integer(4));
    if (width.kind != Kind::integer || width.number < 0 || width.number > 1024)
      in.fail(call, "indent width must be a small integer");
    const Value first = arg(args, 1, "first", Value::from_bool(false));
    const Value blank = arg(args, 2, "blank", Value::from_bool(false));
    return Value::string(indent_text(v.str, std::string(static_cast<size_t>(width.number), ' '),
                                     truthy(first), truthy(blank)));
  }
  if (f == "replace") {  // the method, with the keyword arguments always passed
    const Value m = string_method(in, call, v.str, "replace");
    if (args.empty() || args.back().kind != Kind::kwargs)
      args.push_back(Value::object({}, Kind::kwargs));
    return (*m.fn)(args, env);
  }
  in.fail(call, "unknown filter \"" + f + "\" for a string");
}

}  // namespace

Value called_filter(Interpreter& in, const Value& v, const Node& call, const EnvPtr& env) {
  const std::string& f = call.a[0]->str;
  std::vector<Value> args = in.arguments(call.b, env);
  if (f == "tojson") return tojson(in, call, v, args);
  if (f == "join") return join_filter(in, call, v, args);
  if (f == "int" || f == "float") return number_filter(in, call, f == "int", v, args);
  if (f == "default") return default_filter(in, call, v, args);
  if (v.is_array()) return list_filter(in, call, f, v, args, env);
  if (v.kind == Kind::string) return string_filter(in, call, f, v, args, env);
  if (v.is_object()) {
    const Value m = object_method(in, call, v, f);
    if (m.kind != Kind::function) in.fail(call, "unknown filter \"" + f + "\" for a mapping");
    return (*m.fn)(args, env);
  }
  in.fail(call, "cannot apply filter \"" + f + "\" to " + type_name(v.kind));
}

}  // namespace kiln::chat
