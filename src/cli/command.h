// Subcommands register themselves here at static-initialisation time, so each
// lives in its own file under src/cli/ (cmd_<name>.cpp) and main.cpp never changes.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace kiln::cli {

struct Command {
  std::string name;
  std::string help;
  // Adds the subcommand's flags to `sub` and returns the function to run
  // after parsing (it returns the process exit code).
  std::function<std::function<int()>(CLI::App& sub)> setup;
};

std::vector<Command>& commands();

struct RegisterCommand {
  explicit RegisterCommand(Command command) { commands().push_back(std::move(command)); }
};

}  // namespace kiln::cli
