// `kiln dash`: the event loop around Dashboard. It polls the keyboard, the
// output pipe of a trainer it started, and the runs' metrics files, and
// redraws at most 4 times a second (only when something changed, or once a
// second for the clocks), so watching costs well under 1% of a core.
#pragma once
#include <string>
#include <vector>

#include "report/dashboard.h"

namespace kiln {

struct DashSessionOptions {
  std::vector<std::string> run_dirs;
  std::vector<std::string>
      command;  // `kiln dash -- kiln train ...`: started as a child and watched
  DashOptions dash;
  bool force_ascii = false, force_unicode = false;
  double max_hz = 4;
  bool once = false;  // print one frame as plain text (no escapes) and exit
  int once_width = 100, once_height = 30;
};

// Returns the exit code: the child's when there is one, else 0.
int run_dash(DashSessionOptions options);

// The run directory a `kiln train` command line writes to: its --out value;
// when it has none, `--out runs/<timestamp>` is appended to `command` and that is returned.
std::string child_run_dir(std::vector<std::string>& command);

}  // namespace kiln
