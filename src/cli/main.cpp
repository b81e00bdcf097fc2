// kiln <subcommand>: the single entry point. Errors reach the user as
// "kiln: error: ..." with exit code 2 for bad input and 1 for runtime failures.
#include <cstdio>
#include <exception>

#include "cli/command.h"
#include "core/error.h"

namespace kiln::cli {
std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}
}  // namespace kiln::cli

int main(int argc, char** argv) {
  using namespace kiln::cli;
  CLI::App app{"Kiln: train and run Llama-family language models on CPU matrix units and NVIDIA GPUs"};
  app.require_subcommand(1);
  std::function<int()> run;
  for (auto& command : commands()) {
    CLI::App* sub = app.add_subcommand(command.name, command.help);
    auto fn = command.setup(*sub);
    sub->callback([&run, fn]() { run = fn; });
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
    return 2;
  }
  try {
    return run ? run() : 0;
  } catch (const kiln::InputError& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
    return e.exit_code();
  } catch (const kiln::RuntimeError& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
    return e.exit_code();
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "kiln: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
    return 1;
  }
}
