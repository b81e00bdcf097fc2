// kiln dash RUN_DIR... [-- kiln train ...]: the live terminal dashboard.
#include <fstream>
#include <iterator>
#include <sstream>

#include "cli/command.h"
#include "core/error.h"
#include "report/dash_session.h"

namespace kiln::cli {
namespace {

// The words after "--" on our own command line. CLI11 hands every positional,
// those after "--" included, to one list; the real argv tells where the
// trainer's command starts (an argument of it may itself look like a flag).
size_t words_after_double_dash() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  std::string word;
  for (char c : all) {
    if (c == '\0')
      argv.push_back(word), word.clear();
    else
      word += c;
  }
  size_t i = 1;
  while (i < argv.size() && argv[i] != "dash") ++i;
  for (; i < argv.size(); ++i)
    if (argv[i] == "--") return argv.size() - i - 1;
  return 0;
}

bool parse_size(const std::string& text, int* w, int* h) {
  return std::sscanf(text.c_str(), "%dx%d", w, h) == 2 && *w > 0 && *h > 0 && *w <= 1000 &&
         *h <= 500;
}

struct DashArgs {
  std::vector<std::string> words, unused;
  bool log_x = false, ascii = false, unicode = false, once = false;
  std::string size = "100x30";
};

RegisterCommand dash_command(
    {"dash",
     "Live terminal dashboard of one or more runs (kiln dash RUN_DIR... or kiln dash -- kiln train "
     "...)",
     [](CLI::App& sub) -> std::function<int()> {
       auto a = std::make_shared<DashArgs>();
       // A bounded list plus a second (always empty) list keeps CLI11 in
       // positional mode after "--", so the trainer's flags are not parsed as ours.
       sub.add_option("runs", a->words, "Run directories (or metrics.jsonl files) to watch")
           ->expected(0, 1 << 20);
       sub.add_option("command", a->unused, "-- then a command that trains (its --out is watched)");
       sub.add_flag("--log-x", a->log_x, "Loss plot against log(step) (the l key toggles it)");
       sub.add_flag("--ascii", a->ascii,
                    "ASCII plot and frames (default when the locale is not UTF-8)");
       sub.add_flag("--unicode", a->unicode,
                    "Braille plot and line frames even when the locale does not say UTF-8");
       sub.add_flag("--once", a->once, "Print one frame as plain text and exit (scripts, tests)");
       sub.add_option("--size", a->size, "Frame size for --once, COLSxROWS");
       sub.footer(
           "Keys: q quits (a training the dashboard started is stopped with SIGINT: it checkpoints "
           "and\n"
           "prints its report), l toggles log-x, Tab/n shows the next run's numbers, r repaints.");
       return [a]() {
         DashSessionOptions o;
         const size_t n_command = std::min(words_after_double_dash(), a->words.size());
         o.run_dirs.assign(a->words.begin(), a->words.end() - long(n_command));
         o.command.assign(a->words.end() - long(n_command), a->words.end());
         o.dash.log_x = a->log_x;
         o.force_ascii = a->ascii;
         o.force_unicode = a->unicode;
         o.once = a->once;
         if (!parse_size(a->size, &o.once_width, &o.once_height))
           fail_input("--size", "is not a frame size", "COLSxROWS such as 100x30", a->size);
         return run_dash(std::move(o));
       };
     }});

}  // namespace
}  // namespace kiln::cli
