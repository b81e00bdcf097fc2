// The chat-template interpreter (internal to src/tokenizer/chat_template*).
// It walks the syntax tree the way @huggingface/jinja's Interpreter does:
// scopes (a for loop opens one, if/else does not), dynamic scoping for macros,
// `{{ }}` output of every value except none/undefined.
#pragma once
#include <ctime>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/chat_template.h"
#include "tokenizer/chat_template_ast.h"
#include "tokenizer/chat_template_value.h"

namespace kiln::chat {

struct Env {
  std::shared_ptr<Env> parent;
  std::unordered_map<std::string, Value> vars;

  Value lookup(const std::string& name) const;
  void set(const std::string& name, Value v) { vars[name] = std::move(v); }
};
using EnvPtr = std::shared_ptr<Env>;

// {% break %} / {% continue %}: thrown up to the enclosing loop (through macro
// calls too, as in the reference).
struct LoopSignal {
  bool is_break;
};

using Limits = ChatTemplateLimits;

class Interpreter {
 public:
  Interpreter(const SourceRef& where, const Limits& limits, const std::tm& now)
      : where_(where), limits_(limits), now_(now) {}
  // Namespaces are the only mutable values, so every reference cycle runs
  // through one ({% set ns.f = {'n': ns}.items %}): emptying them all at the
  // end of the render frees the cycles.
  ~Interpreter() {
    for (const auto& weak : namespaces_)
      if (auto ns = weak.lock()) ns->clear();
  }
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;
  void track_namespace(const std::shared_ptr<ObjectMap>& ns) { namespaces_.push_back(ns); }

  std::string run(const std::vector<NodePtr>& program, const EnvPtr& globals);

  Value eval(const Node& n, const EnvPtr& env);
  std::string block(const std::vector<NodePtr>& body, const EnvPtr& env);
  // Positional values, then a kwargs object at the end if any were given.
  std::vector<Value> arguments(const std::vector<NodePtr>& args, const EnvPtr& env,
                               bool always_kwargs = false);
  [[noreturn]] void fail(const Node& n, const std::string& what) const {
    where_.error(n.offset, what);
  }
  void check_size(const Node& n, size_t bytes) const;
  void step(const Node& n, uint64_t count = 1);
  const std::tm& now() const { return now_; }
  // The call expression being evaluated, for errors raised inside functions.
  const Node* call_site() const { return call_site_; }

 private:
  Value member(const Node& n, const EnvPtr& env);
  Value slice(const Node& n, const Value& object, const EnvPtr& env);
  Value call(const Node& n, const EnvPtr& env);
  Value unary(const Node& n, const EnvPtr& env);
  Value binary(const Node& n, const EnvPtr& env);
  Value literal(const Node& n, const EnvPtr& env);
  Value set(const Node& n, const EnvPtr& env);
  Value for_loop(const Node& n, const EnvPtr& env);
  Value macro(const Node& n, const EnvPtr& env);
  Value call_block(const Node& n, const EnvPtr& env);
  void bind_arguments(const Node& at, const std::string& name, const std::vector<NodePtr>& params,
                      const std::vector<NodePtr>& body, std::vector<Value> args,
                      const EnvPtr& scope);

  const SourceRef& where_;
  Limits limits_;
  std::tm now_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  const Node* call_site_ = nullptr;
  std::vector<std::weak_ptr<ObjectMap>> namespaces_;
};

// chat_template_builtins.cpp: the filters, tests, methods and global functions.
Value apply_filter(Interpreter& in, Value operand, const Node& filter, const EnvPtr& env);
bool run_test(Interpreter& in, const Node& at, const std::string& name, const Value& v,
              const Value* arg = nullptr);
// chat_template_filters.cpp: filters called with arguments, `x | f(...)`.
Value called_filter(Interpreter& in, const Value& operand, const Node& call, const EnvPtr& env);
// The sort filter; `attribute` null to compare the items themselves.
Value sort_values(Interpreter& in, const Node& at, const Value& list, bool reverse,
                  bool case_sensitive, const Value* attribute);
// A property of a value that is not a stored key: str.upper, dict.items, list.length.
Value builtin_member(Interpreter& in, const Node& at, const Value& object, const std::string& name);
// `at`: the node errors inside a global function are reported at (the call
// site is not known to a function value; the reference reports no position).
void add_globals(Interpreter& in, Env& env, const Node& at);

// Text helpers of the filters: the indent filter; Array.prototype.join's view
// of an element (none/undefined print as "").
std::string indent_text(const std::string& s, const std::string& pad, bool first, bool blank);
std::string join_part_value(const Value& v);

// chat_template_methods.cpp: string and dict methods.
Value string_method(Interpreter& in, const Node& at, const std::string& s, const std::string& name);
Value object_method(Interpreter& in, const Node& at, const Value& object, const std::string& name);
std::string js_replace(const std::string& s, const std::string& from, const std::string& to,
                       double count);

}  // namespace kiln::chat
