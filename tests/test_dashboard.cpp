// The live dashboard (src/report/dashboard.h and friends): the metrics.jsonl
// tail reader, the plot primitives, the off-screen layout at several sizes,
// the ANSI frame encoder, system sampling, and `kiln dash` itself, both as a
// one-frame text dump and live in a pseudo-terminal watching a child process.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/error.h"
#include "core/system_stats.h"
#include "metrics_fixture.h"
#include "report/cell_buffer.h"
#include "report/dash_session.h"
#include "report/dashboard.h"
#include "report/metrics_reader.h"
#include "report/plot.h"
#include "report/terminal.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::FixtureRun;

fs::path test_dir(const std::string& name) {
  const fs::path dir = fs::path(KILN_TEST_TMPDIR) / "dashboard" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string fmt4(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4f", v);
  return buf;
}

void append(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::app);
  out << text;
}

// Every row fits the frame and holds no control characters.
void expect_well_formed(const CellBuffer& frame) {
  for (int y = 0; y < frame.height(); ++y) {
    const std::string row = frame.row_text(y);
    EXPECT_LE(text_columns(row), frame.width()) << "row " << y << ": " << row;
    for (unsigned char c : row) EXPECT_GE(c, 0x20) << "control byte in row " << y;
  }
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------- reader ---

TEST(MetricsReader, ReadsEveryRecordTypeAndToleratesOddLines) {
  const fs::path root = test_dir("reader");
  FixtureRun f;
  const std::string dir = testing::write_fixture_run(root, f);
  MetricsTail tail(dir);
  EXPECT_TRUE(tail.poll());
  const RunMetrics& m = tail.metrics();
  EXPECT_EQ(m.name, f.name);
  ASSERT_EQ(m.steps.size(), size_t(f.steps_done))
      << "the half-written last line must not count yet";
  EXPECT_EQ(m.steps.back().step, f.steps_done);
  EXPECT_DOUBLE_EQ(m.steps.back().loss, testing::fixture_loss(f, f.steps_done));
  EXPECT_DOUBLE_EQ(m.steps[9].lr, testing::fixture_lr(f, 10));
  EXPECT_EQ(m.evals.size(), size_t(f.steps_done / f.eval_every));
  EXPECT_EQ(m.samples.size(), size_t(f.steps_done / f.sample_every));
  EXPECT_EQ(m.samples.back().prompt, testing::kFixturePrompt);
  EXPECT_EQ(m.system.size(), size_t(f.steps_done / f.system_every));
  EXPECT_EQ(m.bad_lines, 1);
  EXPECT_EQ(m.planned_steps(), f.planned);
  EXPECT_DOUBLE_EQ(m.peak_tflops(), f.peak_tflops);
  EXPECT_DOUBLE_EQ(m.start_time, f.t0);
  EXPECT_TRUE(m.report.is_null());
  EXPECT_FALSE(tail.poll()) << "nothing new was appended";
}

TEST(MetricsReader, CompletesAHalfWrittenLineOnTheNextPoll) {
  const fs::path root = test_dir("partial");
  FixtureRun f;
  f.truncated_tail = false;
  const std::string dir = testing::write_fixture_run(root, f);
  MetricsTail tail(dir);
  tail.poll();
  const fs::path file = fs::path(dir) / "metrics.jsonl";
  append(file, R"({"type":"step","time":1.7e9,"step":151,"lo)");
  EXPECT_FALSE(tail.poll());
  EXPECT_EQ(tail.metrics().steps.size(), 150u);
  append(file, "ss\":2.5}\n");
  EXPECT_TRUE(tail.poll());
  ASSERT_EQ(tail.metrics().steps.size(), 151u);
  EXPECT_DOUBLE_EQ(tail.metrics().steps.back().loss, 2.5);
  EXPECT_TRUE(std::isnan(tail.metrics().steps.back().tok_s)) << "a missing field reads as NaN";
  EXPECT_EQ(tail.metrics().bad_lines, 1) << "the split line was not counted as bad";
}

TEST(MetricsReader, AResumedRunReplacesTheStepsItRedid) {
  const fs::path dir = test_dir("resumed");
  std::ofstream out(dir / "metrics.jsonl");
  for (int s = 1; s <= 10; ++s)
    out << nlohmann::json{{"type", "step"}, {"step", s}, {"loss", 10.0 - s}}.dump() << "\n";
  out << R"({"type":"run","config":{"steps":20}})"
      << "\n";
  for (int s = 7; s <= 12; ++s)
    out << nlohmann::json{{"type", "step"}, {"step", s}, {"loss", 100.0 + s}}.dump() << "\n";
  out.close();
  const RunMetrics m = load_run_metrics(dir.string());
  ASSERT_EQ(m.steps.size(), 12u);
  for (size_t i = 0; i + 1 < m.steps.size(); ++i) EXPECT_LT(m.steps[i].step, m.steps[i + 1].step);
  EXPECT_DOUBLE_EQ(m.steps[5].loss, 4.0);    // step 6, from before the resume
  EXPECT_DOUBLE_EQ(m.steps[6].loss, 107.0);  // step 7, redone
  EXPECT_EQ(m.planned_steps(), 20);
}

TEST(MetricsReader, ReadsAFileThatWasReplacedFromTheStart) {
  const fs::path root = test_dir("replaced");
  FixtureRun f;
  const std::string dir = testing::write_fixture_run(root, f);
  MetricsTail tail(dir);
  tail.poll();
  f.steps_done = 20;
  testing::write_fixture_run(root, f);  // truncates and rewrites: a restarted run
  tail.poll();
  EXPECT_EQ(tail.metrics().steps.size(), 20u);
}

TEST(MetricsReader, MissingOrEmptyRunsAreBadInput) {
  const fs::path dir = test_dir("missing");
  EXPECT_THROW(load_run_metrics((dir / "nope").string()), InputError);
  std::ofstream(dir / "metrics.jsonl") << "garbage\n";
  EXPECT_THROW(load_run_metrics(dir.string()), InputError);
  MetricsTail tail((dir / "nope").string());
  EXPECT_FALSE(tail.poll());
  EXPECT_FALSE(tail.file_seen());
}

// ------------------------------------------------------------------ plot ---

TEST(Plot, BrailleDotsMapToTheirUnicodeBits) {
  DotCanvas c(2, 1, true);
  EXPECT_EQ(c.dots_x(), 4);
  EXPECT_EQ(c.dots_y(), 4);
  EXPECT_EQ(c.glyph(0, 0), U' ');
  c.set(0, 0, 1);  // dot 1
  EXPECT_EQ(c.glyph(0, 0), char32_t(0x2801));
  c.set(1, 3, 1);  // dot 8
  EXPECT_EQ(c.glyph(0, 0), char32_t(0x2881));
  c.set(3, 1, 2);  // right column of cell 1, second row: dot 5
  EXPECT_EQ(c.glyph(1, 0), char32_t(0x2810));
  EXPECT_EQ(c.color(1, 0), 2);
  c.set(9, 9, 1);  // outside: dropped
  DotCanvas ascii(3, 2, false);
  ascii.line(0, 0, 2, 1, 0);
  EXPECT_EQ(ascii.glyph(0, 0), U'*');
  EXPECT_EQ(ascii.glyph(2, 1), U'*');
}

TEST(Plot, TicksAreRoundAndInsideTheAxis) {
  const Axis a(0.37, 9.2, false);
  const auto t = a.ticks(5);
  ASSERT_GE(t.size(), 3u);
  const double step = t[1] - t[0];
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_GE(t[i], a.lo());
    EXPECT_LE(t[i], a.hi());
    if (i > 0) {
      EXPECT_NEAR(t[i] - t[i - 1], step, 1e-9);
    }
  }
  const double mantissa = step / std::pow(10.0, std::floor(std::log10(step)));
  EXPECT_TRUE(std::fabs(mantissa - 1) < 1e-9 || std::fabs(mantissa - 2) < 1e-9 ||
              std::fabs(mantissa - 5) < 1e-9);
  const Axis log_axis(1, 1e5, true);
  const auto lt = log_axis.ticks(4);
  ASSERT_EQ(lt.size(), 6u);  // the decades
  EXPECT_DOUBLE_EQ(log_axis.unit(100), 0.4);
  EXPECT_TRUE(std::isnan(log_axis.unit(0)));
  EXPECT_EQ(tick_label(1500), "1500");
  EXPECT_EQ(tick_label(25000), "25k");
  EXPECT_EQ(tick_label(2.5e6), "2.5M");
  EXPECT_EQ(tick_label(0.5), "0.5");
}

TEST(Plot, DownsampleAndMovingAverageKeepTheMean) {
  Series s;
  for (int i = 0; i < 1000; ++i) s.x.push_back(i), s.y.push_back(i % 7);
  const Series d = downsample(s, 100);
  ASSERT_EQ(d.y.size(), 100u);
  double full = 0, part = 0;
  for (double v : s.y) full += v;
  for (double v : d.y) part += v;
  EXPECT_NEAR(full / 1000, part / 100, 1e-9);
  const std::vector<double> y = {1, 2, NAN, 4, 5};
  const auto m = moving_average(y, 1);
  EXPECT_DOUBLE_EQ(m[0], 1.0) << "the window shrinks to nothing at the ends";
  EXPECT_DOUBLE_EQ(m[1], 1.5) << "(1 + 2 + NaN skipped) / 2";
  EXPECT_TRUE(std::isnan(m[2]));
  EXPECT_DOUBLE_EQ(m[3], 4.5);
  EXPECT_DOUBLE_EQ(m[4], 5.0);
  std::vector<double> line;
  for (int i = 0; i < 50; ++i) line.push_back(3.0 * i + 1);
  const auto smooth_line = moving_average(line, 10);
  for (int i = 0; i < 50; ++i)
    EXPECT_NEAR(smooth_line[i], line[i], 1e-9) << "a straight line is its own average";
}

// ----------------------------------------------------------- cell buffer ---

TEST(CellBuffer, ClipsTextAndHandlesWideAndControlCharacters) {
  CellBuffer b(8, 2);
  EXPECT_EQ(b.text(5, 0, "abcdef"), 3);
  EXPECT_EQ(b.row_text(0), "     abc");
  EXPECT_EQ(b.text(0, 1, "a\tb\x1b[31m"), 8);
  EXPECT_EQ(b.row_text(1), "a b [31m") << "control characters become spaces";
  b.clear();
  EXPECT_EQ(b.text(0, 0, "日本語x"), 7);
  EXPECT_EQ(b.row_text(0), "日本語x ");
  EXPECT_EQ(b.text(6, 1, "日本"), 2) << "a wide glyph that would cross the edge is left out";
  b.text(0, 1, "\xff\xfe");
  EXPECT_EQ(b.at(0, 1).ch, char32_t(0xFFFD));
  const auto lines = wrap_text("the quick brown fox\njumps", 10);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "the quick");
  EXPECT_EQ(lines[1], "brown fox");
  EXPECT_EQ(lines[2], "jumps");
  EXPECT_EQ(wrap_text("abcdefghijkl", 5).size(), 3u) << "a word longer than a line is cut";
}

TEST(Terminal, FramesSendOnlyWhatChanged) {
  CellBuffer a(10, 3), b(10, 3);
  a.text(0, 0, "hello", kRed);
  const std::string full = encode_frame(a, nullptr);
  EXPECT_TRUE(contains(full, "\x1b[2J"));
  EXPECT_TRUE(contains(full, "\x1b[0;31mhello"));
  b = a;
  b.set(7, 2, U'Z', kDefault, kBold);
  const std::string diff = encode_frame(b, &a);
  EXPECT_FALSE(contains(diff, "\x1b[2J"));
  EXPECT_FALSE(contains(diff, "hello"));
  EXPECT_TRUE(contains(diff, "\x1b[3;8H")) << diff;
  EXPECT_TRUE(contains(diff, "\x1b[0;1mZ"));
  EXPECT_EQ(encode_frame(a, &a), "\x1b[0m") << "an unchanged frame sends nothing but a reset";
  CellBuffer c(12, 3);
  EXPECT_TRUE(contains(encode_frame(c, &a), "\x1b[2J")) << "a resize repaints";
}

// ------------------------------------------------------------- dashboard ---

class DashboardRender : public ::testing::Test {
 protected:
  void SetUp() override {
    // Each test its own directory: ctest runs them as parallel processes.
    root_ = test_dir(std::string("render-") +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    f_.finished = false;
    dir_ = testing::write_fixture_run(root_, f_);
  }
  double now() const { return f_.t0 + f_.steps_done * testing::kFixtureMs / 1e3 + 5; }
  fs::path root_;
  FixtureRun f_;
  std::string dir_;
};

TEST_F(DashboardRender, WideFrameShowsEveryPanel) {
  Dashboard dash({dir_}, DashOptions{});
  ASSERT_TRUE(dash.poll());
  CellBuffer frame(100, 30);
  dash.render(frame, now());
  expect_well_formed(frame);
  const std::string text = frame.to_text();
  for (const char* title : {"kiln dash", "Loss", "Training", "System", "Sample @ step 120"})
    EXPECT_TRUE(contains(text, title)) << title << "\n" << text;
  EXPECT_TRUE(contains(text, f_.name));
  EXPECT_TRUE(contains(text, "150 / 300")) << text;
  EXPECT_TRUE(contains(text, fmt4(testing::fixture_loss(f_, 150)))) << text;
  EXPECT_TRUE(contains(text, fmt4(testing::fixture_val_loss(f_, 150)) + " @ 150")) << text;
  EXPECT_TRUE(contains(text, "MFU 14.0%")) << "0.21 of a 1.5 TFLOPS peak\n" << text;
  EXPECT_TRUE(contains(text, "195%")) << "the system record's CPU\n" << text;
  EXPECT_TRUE(contains(text, "412 MB")) << text;
  EXPECT_TRUE(contains(text, "Once upon a time there was a little girl")) << text;
  // ETA: 150 steps to go at 102.4 ms each.
  EXPECT_TRUE(contains(text, "ETA " + format_duration_short(150 * testing::kFixtureMs / 1e3)))
      << text;
  // The plot is drawn with braille dots, and the x axis reaches the last step.
  EXPECT_TRUE(contains(text, "\xe2\xa0") || contains(text, "\xe2\xa1") ||
              contains(text, "\xe2\xa2") || contains(text, "\xe2\xa3"))
      << text;
  EXPECT_TRUE(contains(text, "150")) << text;
  EXPECT_EQ(frame.at(0, 0).attr & kInverse, kInverse) << "the header bar";
}

TEST_F(DashboardRender, SmallFramesStillFitAndKeepTheEssentials) {
  Dashboard dash({dir_}, DashOptions{});
  dash.poll();
  CellBuffer frame(100, 30);
  dash.render(frame, now());
  frame.resize(60, 20);  // as after SIGWINCH
  dash.render(frame, now());
  expect_well_formed(frame);
  const std::string text = frame.to_text();
  EXPECT_TRUE(contains(text, "Loss")) << text;
  EXPECT_TRUE(contains(text, "step 150 / 300")) << text;
  EXPECT_TRUE(contains(text, fmt4(testing::fixture_loss(f_, 150)))) << text;
  EXPECT_TRUE(contains(text, "Once upon a time")) << text;
  for (auto [w, h] : {std::pair{80, 24}, {40, 12}, {200, 60}, {24, 8}, {10, 3}, {1, 1}}) {
    frame.resize(w, h);
    dash.render(frame, now());
    expect_well_formed(frame);
  }
  EXPECT_TRUE(contains(frame.to_text(), "k")) << "a 1x1 frame still says something";
}

TEST_F(DashboardRender, AsciiModeLogXAndSeveralRuns) {
  FixtureRun g;
  g.name = "second-run";
  g.steps_done = 90;
  g.seed = 3;
  const std::string dir2 = testing::write_fixture_run(root_, g);
  DashOptions o;
  o.unicode = false;
  Dashboard dash({dir_, dir2}, o);
  dash.poll();
  CellBuffer frame(100, 30);
  dash.render(frame, now());
  std::string text = frame.to_text();
  for (unsigned char c : text) ASSERT_LT(c, 0x80) << "ASCII mode wrote a non-ASCII byte\n" << text;
  EXPECT_TRUE(contains(text, "second-run " + fmt4(testing::fixture_loss(g, 90)))) << "legend\n"
                                                                                  << text;
  EXPECT_TRUE(contains(text, "[1/2]"));
  dash.toggle_log_x();
  dash.next_run();
  dash.render(frame, now());
  text = frame.to_text();
  EXPECT_TRUE(contains(text, "Loss (log step)")) << text;
  EXPECT_TRUE(contains(text, "[2/2]"));
  EXPECT_TRUE(contains(text, "90 / 300")) << "the numbers follow the selected run\n" << text;
}

TEST_F(DashboardRender, FinishedAndWaitingRuns) {
  FixtureRun done;
  done.name = "done-run";
  done.finished = true;
  done.truncated_tail = false;
  Dashboard dash({testing::write_fixture_run(root_, done), (root_ / "not-started").string()},
                 DashOptions{});
  dash.poll();
  CellBuffer frame(100, 30);
  dash.render(frame, now());
  EXPECT_TRUE(contains(frame.to_text(), "finished")) << frame.to_text();
  dash.next_run();
  dash.render(frame, now());
  EXPECT_TRUE(contains(frame.to_text(), "waiting for metrics.jsonl")) << frame.to_text();
  expect_well_formed(frame);
}

TEST_F(DashboardRender, ChildOutputAndLiveSystemReadings) {
  Dashboard dash({dir_}, DashOptions{});
  dash.poll();
  dash.set_child_status("training pid 4242");
  for (int i = 0; i < 300; ++i) dash.add_output_line("line " + std::to_string(i));
  EXPECT_EQ(dash.output_lines().size(), 200u) << "output history is bounded";
  SystemSample s;
  s.cpu_pct = 777;
  s.rss_mb = 20480;
  s.gpu_util = 55;
  s.gpu_mem_mb = 4096;
  s.gpu_power_w = 123;
  s.cpu_power_w = 45;
  dash.set_live_system(s, true);
  CellBuffer frame(100, 30);
  dash.render(frame, now());
  const std::string text = frame.to_text();
  EXPECT_TRUE(contains(text, "kiln train output")) << text;
  EXPECT_TRUE(contains(text, "line 299")) << text;
  EXPECT_TRUE(contains(text, "training pid 4242")) << text;
  EXPECT_TRUE(contains(text, "777%")) << text;
  EXPECT_TRUE(contains(text, "20.0 GB")) << text;
  EXPECT_TRUE(contains(text, "55%  4.0 GB  123 W")) << text;
  EXPECT_TRUE(contains(text, "45 W (package)")) << text;
  expect_well_formed(frame);
}

// ---------------------------------------------------------- system stats ---

TEST(SystemStats, SamplesThisProcess) {
  SystemSampler sampler(getpid());
  const SystemSample first = sampler.sample();
  ASSERT_TRUE(first.rss_mb.has_value());
  EXPECT_GT(*first.rss_mb, 1.0);
  // The first sample is the average since the process started (absent when
  // it started less than a clock tick ago, as a test process may have).
  if (first.cpu_pct) {
    EXPECT_GE(*first.cpu_pct, 0.0);
  }
  // Burn 0.3 s of CPU time (however long that takes on a loaded machine) and
  // compare the sampler's rate with our own clocks over the same interval.
  auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  const auto wall0 = std::chrono::steady_clock::now();
  const double cpu0 = cpu_now();
  SystemSampler sampler2(getpid());
  sampler2.sample();
  volatile double sink = 0;
  while (cpu_now() - cpu0 < 0.3) sink = sink + std::sqrt(sink + 1);
  const SystemSample second = sampler2.sample();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  const double expected = 100 * (cpu_now() - cpu0) / wall;
  ASSERT_TRUE(second.cpu_pct.has_value());
  // /proc counts in clock ticks (10 ms): allow three of them over the interval.
  EXPECT_NEAR(*second.cpu_pct, expected, 100 * 0.03 / wall + 2) << "over " << wall << " s";
  EXPECT_LT(*second.cpu_pct, 150.0) << "one thread cannot use more than one core";
  const nlohmann::json r = system_record(getpid());
  EXPECT_TRUE(r.contains("cpu_pct"));
  EXPECT_TRUE(r.contains("rss_mb"));
  EXPECT_FALSE(r.contains("type")) << "MetricsLog adds type and time";
  // GPU fields appear exactly when the NVIDIA driver library is there.
  EXPECT_EQ(r.contains("gpu_util"), sampler.nvml_available());
  EXPECT_TRUE(SystemSampler(999999999).sample().rss_mb == std::nullopt) << "no such process";
}

// ------------------------------------------------------------------- CLI ---

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

TEST(DashCli, OnceDumpsAFrameAndRejectsBadInput) {
  const fs::path root = test_dir("cli");
  FixtureRun f;
  const std::string dir = testing::write_fixture_run(root, f);
  const std::string kiln = KILN_BINARY;
  CommandResult r = run_command(kiln + " dash --once --ascii --size 90x26 " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "150 / 300")) << r.output;
  EXPECT_TRUE(contains(r.output, fmt4(testing::fixture_loss(f, 150)))) << r.output;
  int rows = 0;
  for (char c : r.output) rows += c == '\n';
  EXPECT_EQ(rows, 26);
  r = run_command(kiln + " dash --once " + (root / "missing").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "kiln: error:")) << r.output;
  r = run_command(kiln + " dash --once --size 0x0 " + dir);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_command(kiln + " dash " + dir + " </dev/null");
  EXPECT_EQ(r.exit_code, 2) << "the live dashboard needs a terminal\n" << r.output;
  EXPECT_TRUE(contains(r.output, "terminal")) << r.output;
}

TEST(DashCli, FindsTheRunDirectoryOfATrainingCommand) {
  std::vector<std::string> c = {"kiln", "train", "--steps", "5", "--out", "runs/x"};
  EXPECT_EQ(child_run_dir(c), "runs/x");
  c = {"kiln", "train", "--out=runs/y"};
  EXPECT_EQ(child_run_dir(c), "runs/y");
  c = {"/opt/kiln/bin/kiln", "train", "--steps", "5"};
  const std::string made = child_run_dir(c);
  EXPECT_EQ(made.rfind("runs/", 0), 0u) << made;
  ASSERT_EQ(c.size(), 6u) << "--out was added so the trainer writes where we watch";
  EXPECT_EQ(c[4], "--out");
  EXPECT_EQ(c[5], made);
  c = {"python3", "train.py"};
  EXPECT_THROW(child_run_dir(c), InputError);
}

// Builds a fake NVML library with the C compiler and checks that `kiln dash`
// loads it at run time and sums/averages what it reports. Skipped only when
// no C compiler is installed.
TEST(DashCli, ReadsGpusThroughNvmlLoadedAtRunTime) {
  if (system("command -v cc >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no C compiler (cc) to build a stand-in NVML";
  const fs::path root = test_dir("nvml");
  const fs::path src = root / "fake_nvml.c", lib = root / "libfake-nvml.so";
  std::ofstream(src) << R"(#include <stdio.h>
typedef struct { unsigned gpu, memory; } Util;
typedef struct { unsigned long long total, free, used; } Mem;
int nvmlInit_v2(void) { return 0; }
int nvmlDeviceGetCount_v2(unsigned* n) { *n = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void** h) { *h = (void*)(long)(i + 1); return 0; }
int nvmlDeviceGetUtilizationRates(void* h, Util* u) { u->gpu = (long)h == 1 ? 40 : 60; u->memory = 0; return 0; }
int nvmlDeviceGetMemoryInfo(void* h, Mem* m) {
  m->total = 80ull << 30; m->used = ((long)h == 1 ? 3ull : 5ull) << 30; m->free = m->total - m->used; return 0; }
int nvmlDeviceGetPowerUsage(void* h, unsigned* mw) { *mw = (long)h == 1 ? 150000 : 250000; return 0; }
int nvmlDeviceGetName(void* h, char* b, unsigned n) { snprintf(b, n, "Stand-in GPU"); return 0; }
)";
  ASSERT_EQ(system(("cc -shared -fPIC -o " + lib.string() + " " + src.string()).c_str()), 0);
  FixtureRun f;
  const std::string dir = testing::write_fixture_run(root, f);
  const CommandResult r = run_command("KILN_NVML_LIB=" + lib.string() + " " +
                                      std::string(KILN_BINARY) + " dash --once --ascii " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Mean utilisation (40+60)/2, memory 3+5 GiB, power 150+250 W.
  EXPECT_TRUE(contains(r.output, "50%  8.0 GB  400 W")) << r.output;
}

// --------------------------------------------------- live, in a terminal ---

// Reads what the dashboard wrote to the pseudo-terminal for up to `seconds`,
// until `until` appears in the text read since `from` (0 = all).
bool pump(int fd, std::string& screen, double seconds, const std::string& until, size_t from = 0) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!until.empty() && screen.find(until, from) != std::string::npos) return true;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buf[8192];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return !until.empty() && screen.find(until, from) != std::string::npos;
    screen.append(buf, size_t(n));
  }
  return !until.empty() && screen.find(until, from) != std::string::npos;
}

double process_cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::vector<std::string> fields;
  for (std::string w; rest >> w;) fields.push_back(w);
  return (std::stod(fields[11]) + std::stod(fields[12])) / double(sysconf(_SC_CLK_TCK));
}

TEST(DashLive, WatchesAChildRepaintsAndStopsItOnQ) {
  const fs::path root = test_dir("live");
  FixtureRun f;
  f.truncated_tail = false;
  const std::string dir = testing::write_fixture_run(root, f);
  // A stand-in trainer: says hello, appends one step after a moment, and
  // exits 130 on SIGINT like kiln train does.
  const fs::path script = root / "fake_train.sh";
  std::ofstream(script) << "out=\"$2\"\n"
                           "trap 'echo \"fake trainer: stopped by signal\"; kill $sleeper "
                           "2>/dev/null; exit 130' INT\n"
                           "echo \"fake trainer: writing to $out\"\n"
                           "sleep 0.5\n"
                           "echo '{\"type\":\"step\",\"time\":1.7e9,\"step\":151,\"loss\":2.25}' "
                           ">> \"$out/metrics.jsonl\"\n"
                           "sleep 60 & sleeper=$!\n"
                           "wait $sleeper\n";
  winsize ws{};
  ws.ws_col = 100;
  ws.ws_row = 30;
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, &ws);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setenv("LANG", "C.UTF-8", 1);
    unsetenv("LC_ALL");
    execl(KILN_BINARY, "kiln", "dash", "--", "/bin/sh", script.c_str(), "--out", dir.c_str(),
          (char*)nullptr);
    _exit(127);
  }
  std::string screen;
  EXPECT_TRUE(pump(master, screen, 20, "\x1b[?1049h")) << "alternate screen";
  EXPECT_TRUE(pump(master, screen, 20, "fake trainer: writing to")) << screen;
  EXPECT_TRUE(pump(master, screen, 20, "Training")) << screen;
  // Wait for the appended step, then ask for a full repaint so the text reads whole.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  pump(master, screen, 0.2, "");
  size_t mark = screen.size();
  ASSERT_EQ(write(master, "r", 1), 1);
  EXPECT_TRUE(pump(master, screen, 10, "151 / 300", mark)) << screen.substr(mark);
  EXPECT_TRUE(screen.find("2.2500", mark) != std::string::npos) << screen.substr(mark);

  // Resizing repaints the whole screen at the new size.
  ws.ws_col = 70;
  ws.ws_row = 22;
  ioctl(master, TIOCSWINSZ, &ws);
  mark = screen.size();
  EXPECT_TRUE(pump(master, screen, 10, "\x1b[2J", mark)) << "SIGWINCH repaints";

  // Watching costs little: CPU time over 3 s of an idle run.
  pump(master, screen, 0.5, "");
  const double cpu0 = process_cpu_seconds(pid);
  pump(master, screen, 3.0, "");
  const double cpu = process_cpu_seconds(pid) - cpu0;
  EXPECT_LT(cpu / 3.0, 0.02) << "dashboard used " << 100 * cpu / 3.0 << "% of a core";
  std::printf("[ measured ] kiln dash idle CPU: %.2f%% of a core\n", 100 * cpu / 3.0);

  // q stops the child with SIGINT, leaves the alternate screen and passes on its output.
  mark = screen.size();
  ASSERT_EQ(write(master, "q", 1), 1);
  EXPECT_TRUE(pump(master, screen, 20, "fake trainer: stopped by signal", mark))
      << screen.substr(mark);
  EXPECT_TRUE(screen.find("\x1b[?1049l", mark) != std::string::npos) << "left the alternate screen";
  int status = 0;
  pid_t reaped = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while ((reaped = waitpid(pid, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    pump(master, screen, 0.05, "");  // returns at once when the terminal is closed
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (reaped != pid) kill(pid, SIGKILL), waitpid(pid, &status, 0);
  ASSERT_EQ(reaped, pid) << "kiln dash did not exit";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130) << "the child's exit code is passed on";
  close(master);
}

}  // namespace
}  // namespace kiln
