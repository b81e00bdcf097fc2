// Values of the chat-template interpreter and their JavaScript string forms.
#include "tokenizer/chat_template_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace kiln::chat {

const Value* ObjectMap::find(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

void ObjectMap::set(const std::string& key, Value value) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    entries_[it->second].second = std::move(value);
    return;
  }
  index_.emplace(key, entries_.size());
  entries_.emplace_back(key, std::move(value));
}

Value Value::null() {
  Value v;
  v.kind = Kind::null;
  return v;
}
Value Value::from_bool(bool b) {
  Value v;
  v.kind = Kind::boolean;
  v.boolean = b;
  return v;
}
Value Value::integer(double x) {
  Value v;
  v.kind = Kind::integer;
  v.number = x;
  return v;
}
Value Value::floating(double x) {
  Value v;
  v.kind = Kind::floating;
  v.number = x;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.kind = Kind::string;
  v.str = std::move(s);
  return v;
}
Value Value::array(std::vector<Value> items, Kind kind) {
  Value v;
  v.kind = kind;
  v.items = std::make_shared<std::vector<Value>>(std::move(items));
  return v;
}
Value Value::object(ObjectMap m, Kind kind) {
  Value v;
  v.kind = kind;
  v.map = std::make_shared<ObjectMap>(std::move(m));
  return v;
}
Value Value::function(NativeFn f) {
  Value v;
  v.kind = Kind::function;
  v.fn = std::make_shared<NativeFn>(std::move(f));
  return v;
}

const char* type_name(Kind kind) {
  switch (kind) {
    case Kind::undefined:
      return "UndefinedValue";
    case Kind::null:
      return "NullValue";
    case Kind::boolean:
      return "BooleanValue";
    case Kind::integer:
      return "IntegerValue";
    case Kind::floating:
      return "FloatValue";
    case Kind::string:
      return "StringValue";
    case Kind::array:
      return "ArrayValue";
    case Kind::tuple:
      return "TupleValue";
    case Kind::object:
      return "ObjectValue";
    case Kind::kwargs:
      return "KeywordArgumentsValue";
    case Kind::name_space:
      return "NamespaceValue";
    case Kind::function:
      return "FunctionValue";
  }
  return "Value";
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::undefined:
    case Kind::null:
      return false;
    case Kind::boolean:
      return v.boolean;
    case Kind::integer:
    case Kind::floating:
      return v.number != 0 && !std::isnan(v.number);
    case Kind::string:
      return !v.str.empty();
    case Kind::array:
    case Kind::tuple:
      return !v.items->empty();
    case Kind::object:
    case Kind::kwargs:
      return v.map->size() > 0;
    case Kind::name_space:
    case Kind::function:
      return true;  // !!Map, !!function in JS
  }
  return false;
}

// JS Number.prototype.toString(): shortest round-trip digits, laid out by the
// ECMAScript rules (plain up to 1e21, exponent form outside 1e-7..1e21).
std::string js_number(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  if (x == 0) return "0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int n = std::atoi(sci.c_str() + e + 1) + 1;  // value = 0.digits * 10^n
  const int k = static_cast<int>(digits.size());
  std::string out;
  if (k <= n && n <= 21) {
    out = digits + std::string(static_cast<size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out = digits.substr(0, static_cast<size_t>(n)) + "." + digits.substr(static_cast<size_t>(n));
  } else if (-6 < n && n <= 0) {
    out = "0." + std::string(static_cast<size_t>(-n), '0') + digits;
  } else {
    const int exp = n - 1;
    out = digits.substr(0, 1);
    if (k > 1) out += "." + digits.substr(1);
    out += (exp >= 0 ? "e+" : "e-") + std::to_string(std::abs(exp));
  }
  return sign + out;
}

// FloatValue.toString(): integral values keep one decimal (toFixed(1)).
static std::string float_display(double x) {
  if (x == 0 && std::signbit(x)) return "-0.0";
  if (std::isfinite(x) && std::fmod(x, 1.0) == 0) {
    if (std::fabs(x) >= 1e21) return js_number(x);  // toFixed falls back to String()
    char buf[400];
    std::snprintf(buf, sizeof buf, "%.1f", x);
    return buf;
  }
  return js_number(x);
}

std::string display(const Value& v) {
  switch (v.kind) {
    case Kind::undefined:
      return "undefined";
    case Kind::null:
      return "null";
    case Kind::boolean:
      return v.boolean ? "true" : "false";
    case Kind::integer:
      return js_number(v.number);
    case Kind::floating:
      return float_display(v.number);
    case Kind::string:
      return v.str;
    case Kind::function:
      return "[function]";
    default:
      return to_json(v, {}, 0, false);
  }
}

std::string js_string(const Value& v) {
  switch (v.kind) {
    case Kind::floating:
      return js_number(v.number);
    case Kind::array:
    case Kind::tuple: {
      // Array.prototype.toString joins the elements' own toString().
      std::string out;
      for (size_t i = 0; i < v.items->size(); ++i) {
        if (i) out += ",";
        out += display((*v.items)[i]);
      }
      return out;
    }
    case Kind::object:
    case Kind::kwargs:
    case Kind::name_space:
      return "[object Map]";
    default:
      return display(v);
  }
}

// JS ToNumber(string) for the loose == (decimal, Infinity, hex; else NaN).
static double js_to_number(const std::string& s) {
  const std::string t = js_trim(s, true, true);
  if (t.empty()) return 0;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    if (t.find_first_not_of("0123456789abcdefABCDEF", 2) != std::string::npos) return NAN;
    return std::strtod(t.c_str(), nullptr);
  }
  const double v = js_parse_float(t);
  // parseFloat accepts a prefix; ToNumber needs the whole string to parse.
  size_t end = 0;
  std::string body = t;
  if (body[0] == '+' || body[0] == '-') end = 1;
  if (body.compare(end, std::string::npos, "Infinity") == 0) return v;
  if (body.find_first_not_of("0123456789.eE+-", end) != std::string::npos) return NAN;
  char* stop = nullptr;
  const double w = std::strtod(t.c_str(), &stop);
  return (stop && *stop == '\0') ? w : NAN;
}

namespace {
enum class JsType { undefined, null, boolean, number, string, reference };
JsType js_type(const Value& v) {
  switch (v.kind) {
    case Kind::undefined:
      return JsType::undefined;
    case Kind::null:
      return JsType::null;
    case Kind::boolean:
      return JsType::boolean;
    case Kind::integer:
    case Kind::floating:
      return JsType::number;
    case Kind::string:
      return JsType::string;
    default:
      return JsType::reference;
  }
}
const void* identity(const Value& v) {
  if (v.items) return v.items.get();
  if (v.map) return v.map.get();
  return v.fn.get();
}
}  // namespace

bool strict_equal(const Value& a, const Value& b) {
  const JsType ta = js_type(a), tb = js_type(b);
  if (ta != tb) return false;
  switch (ta) {
    case JsType::undefined:
    case JsType::null:
      return true;
    case JsType::boolean:
      return a.boolean == b.boolean;
    case JsType::number:
      return a.number == b.number;
    case JsType::string:
      return a.str == b.str;
    case JsType::reference:
      return identity(a) == identity(b);
  }
  return false;
}

bool loose_equal(const Value& a, const Value& b) {
  const JsType ta = js_type(a), tb = js_type(b);
  if (ta == tb) return strict_equal(a, b);
  const auto nullish = [](JsType t) { return t == JsType::undefined || t == JsType::null; };
  if (nullish(ta) || nullish(tb)) return nullish(ta) && nullish(tb);
  if (ta == JsType::boolean) return loose_equal(Value::integer(a.boolean ? 1 : 0), b);
  if (tb == JsType::boolean) return loose_equal(a, Value::integer(b.boolean ? 1 : 0));
  if (ta == JsType::number && tb == JsType::string) return a.number == js_to_number(b.str);
  if (ta == JsType::string && tb == JsType::number) return js_to_number(a.str) == b.number;
  if (ta == JsType::reference) return loose_equal(Value::string(js_string(a)), b);
  if (tb == JsType::reference) return loose_equal(a, Value::string(js_string(b)));
  return false;
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// makeAsciiSafe: every UTF-16 unit from U+007F up becomes \uXXXX.
static std::string ascii_safe(const std::string& s) {
  std::string out;
  char buf[16];
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    const char32_t cp = decode_utf8(s, i, &len);
    i += len;
    if (cp < 0x7f) {
      out += static_cast<char>(cp);
      continue;
    }
    if (cp >= 0x10000) {
      const char32_t v = cp - 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(0xd800 + (v >> 10)));
      out += buf;
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(0xdc00 + (v & 0x3ff)));
    } else {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
    }
    out += buf;
  }
  return out;
}

static std::string json_number(double x) { return std::isfinite(x) ? js_number(x) : "null"; }

std::string to_json(const Value& v, const JsonOptions& o, int depth, bool undefined_as_null) {
  const std::string item_sep = o.has_separators ? o.item_separator : (o.indent ? "," : ", ");
  const std::string key_sep = o.has_separators ? o.key_separator : ": ";
  switch (v.kind) {
    case Kind::null:
      return "null";
    case Kind::undefined:
      return undefined_as_null ? "null" : "undefined";
    case Kind::integer:
    case Kind::floating:
      return json_number(v.number);
    case Kind::boolean:
      return v.boolean ? "true" : "false";
    case Kind::string:
      return o.ensure_ascii ? ascii_safe(json_quote(v.str)) : json_quote(v.str);
    case Kind::function:
    case Kind::tuple:
    case Kind::kwargs:  // the reference's toJSON has no case for these either
      throw std::runtime_error(std::string("cannot convert a ") + type_name(v.kind) + " to JSON");
    default:
      break;
  }
  const std::string unit(static_cast<size_t>(o.indent), ' ');
  std::string base = "\n";
  for (int i = 0; i < depth; ++i) base += unit;
  const std::string child = base + unit;
  std::vector<std::string> core;
  if (v.is_array()) {
    for (const Value& x : *v.items) core.push_back(to_json(x, o, depth + 1, undefined_as_null));
  } else {
    auto entries = v.map->entries();
    if (o.sort_keys)
      std::stable_sort(entries.begin(), entries.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [key, value] : entries) {
      std::string k = json_quote(key);
      if (o.ensure_ascii) k = ascii_safe(k);
      std::string item = k + key_sep + to_json(value, o, depth + 1, undefined_as_null);
      core.push_back(o.indent ? child + item : item);
    }
  }
  const bool pretty = o.indent && !core.empty();
  std::string out = v.is_array() ? "[" : "{";
  for (size_t i = 0; i < core.size(); ++i) {
    if (i) out += item_sep;
    if (pretty && v.is_array()) out += child;
    out += core[i];
  }
  if (pretty) out += base;
  return out + (v.is_array() ? "]" : "}");
}

// An array-index key ("0", "17"): JS objects list these first, ascending.
static bool index_key(const std::string& k) {
  if (k.empty() || k.size() > 10 || (k.size() > 1 && k[0] == '0')) return false;
  if (k.find_first_not_of("0123456789") != std::string::npos) return false;
  return std::stoull(k) < 4294967295ULL;
}

Value from_json(const nlohmann::ordered_json& j) {
  using T = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case T::null:
      return Value::null();
    case T::boolean:
      return Value::from_bool(j.get<bool>());
    case T::number_integer:
      return Value::integer(static_cast<double>(j.get<int64_t>()));
    case T::number_unsigned:
      return Value::integer(static_cast<double>(j.get<uint64_t>()));
    case T::number_float: {
      const double x = j.get<double>();
      return std::isfinite(x) && std::fmod(x, 1.0) == 0 ? Value::integer(x) : Value::floating(x);
    }
    case T::string:
      return Value::string(j.get<std::string>());
    case T::array: {
      std::vector<Value> items;
      for (const auto& x : j) items.push_back(from_json(x));
      return Value::array(std::move(items));
    }
    case T::object: {
      std::vector<std::pair<unsigned long long, std::string>> indexed;
      ObjectMap m;
      for (auto it = j.begin(); it != j.end(); ++it)
        if (index_key(it.key())) indexed.emplace_back(std::stoull(it.key()), it.key());
      std::sort(indexed.begin(), indexed.end());
      for (const auto& [n, key] : indexed) m.set(key, from_json(j.at(key)));
      for (auto it = j.begin(); it != j.end(); ++it)
        if (!index_key(it.key())) m.set(it.key(), from_json(it.value()));
      return Value::object(std::move(m));
    }
    default:
      return Value::undefined();  // binary/discarded never come from a JSON file
  }
}

}  // namespace kiln::chat
