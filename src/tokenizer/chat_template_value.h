// Run-time values of the chat-template interpreter.
//
// The model copies @huggingface/jinja's (the renderer transformers.js uses),
// since Kiln's goal is byte-identical prompts: numbers are JavaScript doubles
// tagged integer or float, objects keep insertion order, arrays/objects/
// namespaces are shared by reference (== compares them by identity, as JS does),
// and the string forms follow JavaScript's String() and JSON.stringify().
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kiln::chat {

enum class Kind {
  undefined,
  null,
  boolean,
  integer,
  floating,
  string,
  array,
  tuple,
  object,
  kwargs,
  name_space,
  function
};

struct Value;
struct Env;

class ObjectMap;

// A callable: built-in functions and macros. `args` ends with a kwargs value
// when the call had keyword arguments (the reference's calling convention).
using NativeFn = std::function<Value(std::vector<Value>& args, const std::shared_ptr<Env>& caller)>;

struct Value {
  Kind kind = Kind::undefined;
  bool boolean = false;
  double number = 0;
  std::string str;
  std::shared_ptr<std::vector<Value>> items;  // array, tuple
  std::shared_ptr<ObjectMap> map;             // object, kwargs, namespace
  std::shared_ptr<NativeFn> fn;

  static Value undefined() { return {}; }
  static Value null();
  static Value from_bool(bool b);
  static Value integer(double v);
  static Value floating(double v);
  static Value string(std::string s);
  static Value array(std::vector<Value> v, Kind kind = Kind::array);
  static Value object(ObjectMap m, Kind kind = Kind::object);
  static Value function(NativeFn f);

  bool is_array() const { return kind == Kind::array || kind == Kind::tuple; }
  bool is_object() const { return kind == Kind::object || kind == Kind::kwargs; }
  bool is_number() const { return kind == Kind::integer || kind == Kind::floating; }
  bool is_attr_container() const { return is_object() || kind == Kind::name_space; }
};

// Insertion-ordered string -> Value map (a JS Map).
class ObjectMap {
 public:
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value value);
  const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  void clear() {
    entries_.clear();
    index_.clear();
  }

 private:
  std::vector<std::pair<std::string, Value>> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// The reference's type names, used in error messages ("StringValue").
const char* type_name(Kind kind);

// Python-like truthiness as the reference defines it (empty array/object false).
bool truthy(const Value& v);

// What `{{ v }}` prints (the reference's toString()).
std::string display(const Value& v);
// JavaScript String(v.value): what `+` and `~` concatenate.
std::string js_string(const Value& v);
// JavaScript's Number.prototype.toString().
std::string js_number(double x);

// JSON.stringify semantics: `a == b` on values (JS loose equality) and `===`.
bool loose_equal(const Value& a, const Value& b);
bool strict_equal(const Value& a, const Value& b);

struct JsonOptions {
  int indent = 0;  // 0: one line
  bool ensure_ascii = false;
  bool sort_keys = false;
  bool has_separators = false;
  std::string item_separator, key_separator;
};
// The reference's toJSON(); throws std::runtime_error for a function.
std::string to_json(const Value& v, const JsonOptions& options, int depth = 0,
                    bool undefined_as_null = true);
// JSON.stringify of a string: quotes and escapes.
std::string json_quote(std::string_view s);

// Context JSON -> values, the way JSON.parse + convertToRuntimeValues see it:
// integral numbers are integers, array-index keys come first (JS object order).
Value from_json(const nlohmann::ordered_json& j);

// --- UTF-8 / JavaScript string helpers ---------------------------------------
// The code point at s[i] and its byte length (malformed byte: U+FFFD, 1).
char32_t decode_utf8(std::string_view s, size_t i, size_t* len);
void append_utf8(std::string& out, char32_t cp);
std::vector<std::string> code_points(std::string_view s);
// JavaScript's \s (and String.prototype.trim's set).
bool js_space(char32_t cp);
// Byte length of the JS whitespace character at s[i], 0 if none.
size_t space_at(std::string_view s, size_t i);
std::string js_trim(std::string_view s, bool left, bool right);
// toUpperCase()/toLowerCase() (ASCII, Latin, Greek, Cyrillic; see the .cpp).
std::string js_case(std::string_view s, bool upper);
// The length JavaScript reports: UTF-16 code units.
size_t js_length(std::string_view s);
// parseInt(s, 10) / parseFloat(s); NaN when nothing parses.
double js_parse_int(std::string_view s);
double js_parse_float(std::string_view s);

}  // namespace kiln::chat
