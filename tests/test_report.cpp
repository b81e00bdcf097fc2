// `kiln report` (src/report/html_report.h, chart_render.h, png.h):
// the HTML is checked structurally (one <svg> per chart, nothing fetched from
// outside, names escaped, the efficiency numbers present), its charts'
// coordinates stay inside their boxes, the PNG file (written with libpng) reads
// back pixel for pixel and damage to it is caught, and the
// page is rendered by headless Chromium into a screenshot that must not be blank.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "metrics_fixture.h"
#include "png_reader.h"
#include "report/chart_render.h"
#include "report/html_report.h"
#include "report/png.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::FixtureRun;

fs::path test_dir(const std::string& name) {
  const fs::path dir = fs::path(KILN_TEST_TMPDIR) / "report" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

bool contains(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

struct CommandResult {
  int exit_code;
  std::string output;
};

CommandResult run_command(const std::string& cmd) {
  CommandResult r{-1, ""};
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int st = pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// Two runs: one finished with an efficiency report, one still going, whose
// name needs escaping.
std::vector<std::string> fixture_runs(const fs::path& root, FixtureRun* finished,
                                      FixtureRun* partial) {
  finished->name = "finished-run";
  finished->finished = true;
  finished->truncated_tail = false;
  partial->name = "partial <b>&run";
  partial->steps_done = 90;
  partial->seed = 2;
  partial->system_every = 0;
  return {testing::write_fixture_run(root, *finished), testing::write_fixture_run(root, *partial)};
}

// ---------------------------------------------------------------- PNG ---

TEST(Png, RoundTripsAndRejectsDamage) {
  RgbImage img(37, 19, Rgb{255, 255, 255});
  Rng rng(11, 2);
  for (auto& p : img.pixels)
    if (rng.uniform() < 0.3f)
      p = {uint8_t(rng.next_u32()), uint8_t(rng.next_u32()), uint8_t(rng.next_u32())};
  const std::string file = encode_png(img);
  ASSERT_EQ(file.substr(1, 3), "PNG");
  std::string error;
  const auto back = test::read_png(file, &error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->width, 37);
  EXPECT_EQ(back->height, 19);
  EXPECT_TRUE(back->pixels == img.pixels);
  std::string damaged = file;
  damaged[damaged.size() / 2] ^= 0x10;
  EXPECT_FALSE(test::read_png(damaged, &error));
  EXPECT_FALSE(test::read_png(file.substr(0, file.size() - 20), &error));
  EXPECT_FALSE(test::read_png("GIF89a", &error));
}

TEST(Png, LossChartIsDrawnInTheRunColours) {
  const fs::path root = test_dir("png");
  FixtureRun a, b;
  const auto dirs = fixture_runs(root, &a, &b);
  std::vector<RunMetrics> runs = {load_run_metrics(dirs[0]), load_run_metrics(dirs[1])};
  const RgbImage img = raster_chart(loss_chart(runs), 1000, 600);
  size_t colour0 = 0, colour1 = 0, non_white = 0;
  const ChartColor c0 = chart_color(0), c1 = chart_color(1);
  for (const Rgb& p : img.pixels) {
    colour0 += p == Rgb{c0.r, c0.g, c0.b};
    colour1 += p == Rgb{c1.r, c1.g, c1.b};
    non_white += !(p == Rgb{255, 255, 255});
  }
  EXPECT_GT(colour0, 500u) << "run 0's curve";
  EXPECT_GT(colour1, 300u) << "run 1's curve";
  EXPECT_GT(non_white, 10000u);
  // An empty chart says so instead of drawing nothing.
  const RgbImage empty = raster_chart(ChartSpec{"Empty", "x", "y", false, false, {}}, 300, 200);
  EXPECT_TRUE(std::any_of(empty.pixels.begin(), empty.pixels.end(), [](const Rgb& p) {
    return !(p == Rgb{255, 255, 255});
  }));
}

// --------------------------------------------------------------- HTML ---

TEST(HtmlReport, IsSelfContainedAndHoldsEveryPart) {
  const fs::path root = test_dir("html");
  FixtureRun a, b;
  const auto dirs = fixture_runs(root, &a, &b);
  std::vector<RunMetrics> runs = {load_run_metrics(dirs[0]), load_run_metrics(dirs[1])};
  const std::string html = html_report(runs, 1.7e9);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_TRUE(contains(html, "</html>"));
  // One <svg> per chart: loss vs steps / tokens / wall time, throughput, lr,
  // grad norm, and memory (the finished run logged system records).
  EXPECT_EQ(count(html, "<svg"), 7u);
  EXPECT_EQ(count(html, "</svg>"), 7u);
  for (const char* title : {"Loss", "Loss vs tokens", "Loss vs wall time", "Throughput",
                            "Learning rate", "Gradient norm", "Memory"})
    EXPECT_TRUE(contains(html, std::string("<title>") + title)) << title;
  // Nothing is loaded from anywhere: no URLs, no scripts, no external resources.
  for (const char* forbidden :
       {"http://", "https://", "src=", "href=", "<script", "@import", "<link"})
    EXPECT_FALSE(contains(html, forbidden)) << forbidden;
  // Run names, escaped.
  EXPECT_TRUE(contains(html, "finished-run"));
  EXPECT_TRUE(contains(html, "partial &lt;b&gt;&amp;run"));
  EXPECT_FALSE(contains(html, "<b>&run"));
  // The efficiency report's numbers (fixture: wall 20.5 s, compile 3.25 s, 433 MB,
  // MFU = 0.21 / 1.5), and the note for the run that has none.
  for (const char* v : {">20.50<", ">3.25<", ">15.36<", ">102.4<", ">20000<", ">433<", ">14.0<",
                        ">0.210<", ">1.500<"})
    EXPECT_TRUE(contains(html, v)) << v;
  EXPECT_TRUE(contains(html, "no efficiency report yet"));
  // Config, samples, final losses.
  EXPECT_TRUE(contains(html, "config.batch</td><td>8<"));
  EXPECT_TRUE(contains(html, "model.n_layers</td><td>5<"));
  EXPECT_TRUE(contains(html, std::string("<b>") + testing::kFixturePrompt + "</b>"));
  char best_val[32];
  std::snprintf(best_val, sizeof(best_val), "%.4f", [&] {
    double best = 1e9;
    for (int s = a.eval_every; s <= a.steps_done; s += a.eval_every)
      best = std::min(best, testing::fixture_val_loss(a, s));
    return best;
  }());
  EXPECT_TRUE(contains(html, best_val)) << "best validation loss " << best_val;
}

TEST(HtmlReport, ChartGeometryStaysInsideEachChart) {
  const fs::path root = test_dir("geometry");
  FixtureRun a, b;
  const auto dirs = fixture_runs(root, &a, &b);
  const std::string html =
      html_report({load_run_metrics(dirs[0]), load_run_metrics(dirs[1])}, 1.7e9);
  const std::regex path_re("<path d=\"([^\"]*)\"");
  const std::regex number_re("[-0-9.]+");
  size_t paths = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), path_re);
       it != std::sregex_iterator(); ++it) {
    const std::string d = (*it)[1];
    ASSERT_TRUE(d[0] == 'M') << d.substr(0, 40);
    int k = 0;
    for (auto n = std::sregex_iterator(d.begin(), d.end(), number_re); n != std::sregex_iterator();
         ++n, ++k) {
      const double v = std::stod(n->str());
      EXPECT_GE(v, 0.0);
      EXPECT_LE(v, k % 2 == 0 ? 600.0 : 340.0) << (k % 2 == 0 ? "x" : "y");
    }
    ++paths;
  }
  EXPECT_GE(paths, 12u) << "each run's curves in each chart";
  // Clip-path ids are unique within the page.
  std::set<std::string> ids;
  const std::regex id_re("clipPath id=\"([^\"]+)\"");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), id_re);
       it != std::sregex_iterator(); ++it)
    EXPECT_TRUE(ids.insert((*it)[1]).second) << (*it)[1];
}

TEST(ReportCli, WritesHtmlAndPngAndRejectsMissingRuns) {
  const fs::path root = test_dir("cli");
  FixtureRun a, b;
  b.name = "plain-name";  // keep the shell command simple
  b.steps_done = 90;
  a.finished = true;
  const std::string d0 = testing::write_fixture_run(root, a),
                    d1 = testing::write_fixture_run(root, b);
  const fs::path out = root / "out" / "report.html";
  fs::create_directories(out.parent_path());
  CommandResult r = run_command(std::string(KILN_BINARY) + " report " + d0 + " " + d1 + " --out " +
                                out.string() + " --png");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string html = read_all(out);
  EXPECT_EQ(count(html, "<svg"), 7u);
  std::string error;
  const auto png = test::read_png(read_all(root / "out" / "report.png"), &error);
  ASSERT_TRUE(png) << error;
  EXPECT_EQ(png->width, 1000);
  EXPECT_EQ(png->height, 600);

  const fs::path none = root / "out" / "none.html";
  r = run_command(std::string(KILN_BINARY) + " report " + (root / "missing").string() + " --out " +
                  none.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "kiln: error:")) << r.output;
  EXPECT_FALSE(fs::exists(none)) << "no output on bad input";
}

// -------------------------------------------------- headless Chromium ---

TEST(HtmlReport, RendersInHeadlessChromium) {
  const char* chromium = "/usr/bin/chromium";
  if (access(chromium, X_OK) != 0)
    GTEST_SKIP() << "Chromium is not installed (" << chromium
                 << "); .ci/run installs Debian's chromium package";
  const fs::path root = test_dir("chromium");
  FixtureRun a, b;
  const auto dirs = fixture_runs(root, &a, &b);
  const fs::path page = root / "report.html", shot = root / "shot.png", profile = root / "profile";
  write_report(dirs, page.string(), "");
  const std::string cmd =
      "timeout 120 " + std::string(chromium) +
      " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
      " --disable-background-networking --disable-component-update --disable-sync"
      " --user-data-dir=" +
      profile.string() + " --screenshot=" + shot.string() + " --window-size=1200,900 file://" +
      fs::absolute(page).string();
  const CommandResult r = run_command(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.output;
  std::string error;
  const auto img = test::read_png(read_all(shot), &error);
  ASSERT_TRUE(img) << "Chromium's screenshot: " << error;
  EXPECT_EQ(img->width, 1200);
  EXPECT_EQ(img->height, 900);
  // Not blank: many colours, a good share of pixels off the page background,
  // and the first run's colour (its table swatch and curves) among them.
  const Rgb background = img->at(img->width - 30, img->height / 2);
  std::set<uint32_t> colours;
  size_t off_background = 0, run_colour = 0;
  const ChartColor c0 = chart_color(0);
  for (const Rgb& p : img->pixels) {
    colours.insert(uint32_t(p.r) << 16 | uint32_t(p.g) << 8 | p.b);
    off_background += !(p == background);
    run_colour += std::abs(p.r - c0.r) + std::abs(p.g - c0.g) + std::abs(p.b - c0.b) < 24;
  }
  EXPECT_GT(colours.size(), 50u);
  EXPECT_GT(double(off_background) / double(img->pixels.size()), 0.05);
  // The colour swatches alone (table and legends) are a few hundred pixels; more means the curves
  // drew.
  EXPECT_GT(run_colour, 600u) << "the run colour is visible (the charts drew)";
  std::printf("[ chromium ] %zu colours, %.1f%% off background, %zu pixels in run colour\n",
              colours.size(), 100.0 * double(off_background) / double(img->pixels.size()),
              run_colour);
}

}  // namespace
}  // namespace kiln
