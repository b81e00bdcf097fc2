// kiln report RUN_DIR... --out report.html [--png]: a self-contained HTML report.
#include <cstdio>
#include <filesystem>

#include "cli/command.h"
#include "report/html_report.h"

namespace kiln::cli {
namespace {

struct ReportArgs {
  std::vector<std::string> runs;
  std::string out = "report.html";
  bool png = false;
};

RegisterCommand report_command(
    {"report", "Write one self-contained HTML report (inline SVG charts) of one or more runs",
     [](CLI::App& sub) -> std::function<int()> {
       auto a = std::make_shared<ReportArgs>();
       sub.add_option("runs", a->runs,
                      "Run directories (or metrics.jsonl files); several are overlaid")
           ->required();
       sub.add_option("--out", a->out, "HTML file to write");
       sub.add_flag("--png", a->png,
                    "Also write the loss chart as a PNG next to --out (same name, .png)");
       return [a]() {
         std::string png;
         if (a->png) png = std::filesystem::path(a->out).replace_extension(".png").string();
         write_report(a->runs, a->out, png);
         std::printf("kiln: wrote %s%s%s\n", a->out.c_str(), png.empty() ? "" : " and ",
                     png.c_str());
         return 0;
       };
     }});

}  // namespace
}  // namespace kiln::cli
