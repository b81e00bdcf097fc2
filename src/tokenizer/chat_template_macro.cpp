// Chat-template interpreter: macros, {% call %} blocks and the program run.
// Macros are dynamically scoped (their body sees the caller's variables), as
// in @huggingface/jinja; nesting is capped so a recursive macro fails cleanly.
#include "tokenizer/chat_template_eval.h"

namespace kiln::chat {
namespace {

const std::string& param_name(const Node& p) { return p.str; }  // identifier or kwarg

// Does the body read `kwargs` / `varargs` (so a macro accepts extra arguments)?
void find_special(const Node& n, bool* kwargs, bool* varargs, int depth = 0) {
  if (depth > 400) return;
  if (n.kind == N::identifier) {
    if (n.str == "kwargs") *kwargs = true;
    if (n.str == "varargs") *varargs = true;
  }
  for (const auto* list : {&n.a, &n.b, &n.body, &n.alt})
    for (const NodePtr& c : *list)
      if (c) find_special(*c, kwargs, varargs, depth + 1);
}

}  // namespace

void Interpreter::bind_arguments(const Node& at, const std::string& name,
                                 const std::vector<NodePtr>& params,
                                 const std::vector<NodePtr>& body, std::vector<Value> args,
                                 const EnvPtr& scope) {
  bool wants_kwargs = false, wants_varargs = false;
  for (const NodePtr& s : body) find_special(*s, &wants_kwargs, &wants_varargs);
  for (const NodePtr& p : params)
    for (const char* special : {"kwargs", "varargs"})
      if (param_name(*p) == special) (special[0] == 'k' ? wants_kwargs : wants_varargs) = false;
  ObjectMap kwargs;
  if (!args.empty() && args.back().kind == Kind::kwargs) {
    kwargs = *args.back().map;
    args.pop_back();
  }
  std::vector<const Node*> pending_defaults;
  ObjectMap rest;
  for (size_t i = 0; i < params.size(); ++i) {
    const Node& p = *params[i];
    Value v;
    bool given = i < args.size();
    if (given) v = args[i];
    if (!given && kwargs.find(p.str)) {
      v = *kwargs.find(p.str);
      given = true;
    }
    if (!given && p.kind == N::kwarg) pending_defaults.push_back(&p);
    scope->set(p.str, v);
  }
  for (const auto& [key, value] : kwargs.entries()) {
    bool is_param = false;
    for (const NodePtr& p : params) is_param = is_param || p->str == key;
    if (!is_param) rest.set(key, value);
  }
  if (wants_kwargs)
    scope->set("kwargs", Value::object(std::move(rest)));
  else if (rest.size() > 0)
    fail(at, "macro " + name + " takes no keyword argument '" + rest.entries()[0].first + "'");
  if (wants_varargs) {
    std::vector<Value> extra;
    for (size_t i = params.size(); i < args.size(); ++i) extra.push_back(args[i]);
    scope->set("varargs", Value::array(std::move(extra)));
  } else if (args.size() > params.size()) {
    fail(at, "macro " + name + " takes at most " + std::to_string(params.size()) + " argument(s)");
  }
  for (const Node* p : pending_defaults) scope->set(p->str, eval(*p->a[0], scope));
}

Value Interpreter::macro(const Node& n, const EnvPtr& env) {
  const Node* node = &n;
  env->set(n.str, Value::function([this, node](std::vector<Value>& args, const EnvPtr& caller) {
             if (call_depth_ >= limits_.max_call_depth)
               fail(*node, "macro calls nested too deeply (more than " +
                               std::to_string(limits_.max_call_depth) + ")");
             auto scope = std::make_shared<Env>();
             scope->parent = caller;
             bind_arguments(*node, "'" + node->str + "'", node->a, node->body, args, scope);
             ++call_depth_;
             struct Leave {
               int& depth;
               ~Leave() { --depth; }
             } leave{call_depth_};
             return Value::string(block(node->body, scope));
           }));
  return Value::null();
}

Value Interpreter::call_block(const Node& n, const EnvPtr& env) {
  const Node* node = &n;
  std::weak_ptr<Env> home = env;  // a stored caller() must not keep its scope alive
  Value caller = Value::function([this, node, home](std::vector<Value>& args, const EnvPtr&) {
    EnvPtr parent = home.lock();
    if (!parent) fail(*node, "caller() used after its call block ended");
    if (call_depth_ >= limits_.max_call_depth) fail(*node, "caller() nested too deeply");
    auto scope = std::make_shared<Env>();
    scope->parent = parent;
    bind_arguments(*node, "None", node->b, node->body, args, scope);
    ++call_depth_;
    struct Leave {
      int& depth;
      ~Leave() { --depth; }
    } leave{call_depth_};
    return Value::string(block(node->body, scope));
  });
  const Node& call = *n.a[0];
  std::vector<Value> args = arguments(call.b, env, true);
  const Value fn = eval(*call.a[0], env);
  if (fn.kind != Kind::function) fail(n, "{% call %} needs a macro");
  auto scope = std::make_shared<Env>();
  scope->parent = env;
  scope->set("caller", caller);
  return (*fn.fn)(args, scope);
}

std::string Interpreter::run(const std::vector<NodePtr>& program, const EnvPtr& globals) {
  try {
    return block(program, globals);
  } catch (const LoopSignal& signal) {
    where_.error(0,
                 signal.is_break ? "{% break %} outside a loop" : "{% continue %} outside a loop");
  }
}

}  // namespace kiln::chat
