// String and dict methods of the chat-template language: "x".strip(),
// d.items(), ... As in @huggingface/jinja, strip/lstrip/rstrip ignore their
// argument and trim all whitespace, title() capitalises ASCII words only
// (/\b\w/), and capitalize() leaves the rest of the string as it is.
#include <algorithm>
#include <cmath>

#include "tokenizer/chat_template_eval.h"

namespace kiln::chat {
namespace {

bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
std::string upper(const std::string& s) { return js_case(s, true); }
std::string lower(const std::string& s) { return js_case(s, false); }
// /\b\w/g -> upper case: the first character of each ASCII word.
std::string title(std::string s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (word_char(s[i]) && (i == 0 || !word_char(s[i - 1])) && s[i] >= 'a' && s[i] <= 'z')
      s[i] = static_cast<char>(s[i] - 32);
  return s;
}

bool prefix_test(Interpreter& in, const Node& at, const std::string& s, const Value& pattern,
                 bool start) {
  const auto test = [&](const std::string& p) {
    if (p.size() > s.size()) return false;
    return start ? s.compare(0, p.size(), p) == 0
                 : s.compare(s.size() - p.size(), p.size(), p) == 0;
  };
  const std::string what =
      std::string(start ? "startswith" : "endswith") + "() needs a string or a tuple of strings";
  if (pattern.kind == Kind::string) return test(pattern.str);
  if (!pattern.is_array()) in.fail(at, what);
  for (const Value& p : *pattern.items) {
    if (p.kind != Kind::string) in.fail(at, what);
    if (test(p.str)) return true;
  }
  return false;
}

Value split(Interpreter& in, const Node& at, const std::string& s, std::vector<Value>& args) {
  const Value sep = args.size() > 0 ? args[0] : Value::null();
  const Value max = args.size() > 1 ? args[1] : Value::integer(-1);
  if (sep.kind != Kind::string && sep.kind != Kind::null)
    in.fail(at, "split() separator must be a string or none");
  if (max.kind != Kind::integer) in.fail(at, "split() maxsplit must be an integer");
  std::vector<Value> parts;
  if (sep.kind == Kind::null) {  // runs of whitespace, Python's str.split()
    const std::string text = js_trim(s, true, false);
    size_t i = 0;
    while (i < text.size()) {
      size_t start = i;
      while (i < text.size() && !space_at(text, i)) ++i;
      if (max.number != -1 && static_cast<double>(parts.size()) >= max.number) {
        parts.push_back(Value::string(text.substr(start)));
        break;
      }
      parts.push_back(Value::string(text.substr(start, i - start)));
      while (size_t n = space_at(text, i)) i += n;
    }
  } else {
    if (sep.str.empty()) in.fail(at, "split() separator is empty");
    size_t from = 0;
    while (true) {
      in.step(at);
      const size_t hit = s.find(sep.str, from);
      const bool full = max.number != -1 && static_cast<double>(parts.size()) >= max.number;
      if (hit == std::string::npos || full) {
        parts.push_back(Value::string(s.substr(from)));
        break;
      }
      parts.push_back(Value::string(s.substr(from, hit - from)));
      from = hit + sep.str.size();
    }
  }
  return Value::array(std::move(parts));
}

Value replace_method(Interpreter& in, const Node& at, const std::string& s,
                     std::vector<Value>& args) {
  if (args.size() < 2) in.fail(at, "replace() needs two arguments");
  if (args[0].kind != Kind::string || args[1].kind != Kind::string)
    in.fail(at, "replace() arguments must be strings");
  Value count = Value::null();
  if (args.size() > 2) {
    if (args[2].kind == Kind::kwargs) {
      const Value* c = args[2].map->find("count");
      count = c ? *c : Value::null();
    } else {
      count = args[2];
    }
  }
  if (count.kind != Kind::integer && count.kind != Kind::null)
    in.fail(at, "replace() count must be an integer or none");
  std::string out =
      js_replace(s, args[0].str, args[1].str, count.kind == Kind::null ? -1 : count.number);
  in.check_size(at, out.size());
  return Value::string(std::move(out));
}

}  // namespace

// str.replace(old, new, count) with the reference's rules: an empty `old`
// matches before every code point and at the end; count < 0 means all.
std::string js_replace(const std::string& s, const std::string& from, const std::string& to,
                       double count) {
  if (count == 0) return s;
  double left = count < 0 ? INFINITY : count;
  std::string out;
  if (from.empty()) {
    for (const std::string& cp : code_points(s)) {
      if (left-- > 0) out += to;
      out += cp;
    }
    if (left > 0) out += to;
    return out;
  }
  size_t pos = 0;
  while (true) {
    const size_t hit = left > 0 ? s.find(from, pos) : std::string::npos;
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos).append(to);
    pos = hit + from.size();
    --left;
  }
  return out.append(s, pos, std::string::npos);
}

Value string_method(Interpreter& in, const Node& at, const std::string& s,
                    const std::string& name) {
  if (name == "length") return Value::integer(static_cast<double>(js_length(s)));
  static const char* kNames[] = {"upper",      "lower",  "strip",  "title",
                                 "capitalize", "rstrip", "lstrip", "startswith",
                                 "endswith",   "split",  "replace"};
  if (std::find_if(std::begin(kNames), std::end(kNames),
                   [&](const char* n) { return name == n; }) == std::end(kNames))
    return Value::undefined();
  Interpreter* ip = &in;
  const Node* node = &at;
  return Value::function([ip, node, s, name](std::vector<Value>& args, const EnvPtr&) {
    if (name == "upper") return Value::string(upper(s));
    if (name == "lower") return Value::string(lower(s));
    if (name == "strip") return Value::string(js_trim(s, true, true));
    if (name == "lstrip") return Value::string(js_trim(s, true, false));
    if (name == "rstrip") return Value::string(js_trim(s, false, true));
    if (name == "title") return Value::string(title(s));
    if (name == "capitalize") {  // the first character up, the rest unchanged
      if (s.empty()) return Value::string(s);
      size_t len = 1;
      decode_utf8(s, 0, &len);
      return Value::string(upper(s.substr(0, len)) + s.substr(len));
    }
    if (name == "split") return split(*ip, *node, s, args);
    if (name == "replace") return replace_method(*ip, *node, s, args);
    if (args.empty()) ip->fail(*node, name + "() needs an argument");
    return Value::from_bool(prefix_test(*ip, *node, s, args[0], name == "startswith"));
  });
}

}  // namespace kiln::chat
