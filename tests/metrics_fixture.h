// A synthetic run directory for the dashboard and report tests: a
// metrics.jsonl shaped like the trainer's (schema in the design notes),
// with the oddities readers must survive (an unknown record type, a line
// that is not JSON, a half-written last line). Values come from formulas the
// tests recompute, so no expected number is hard-coded.
#pragma once
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace kiln::testing {

struct FixtureRun {
  std::string name = "fixture-run";
  int steps_done = 150, planned = 300;
  int eval_every = 25, sample_every = 40, system_every = 40;
  bool finished = false;       // writes the efficiency "report" record
  bool truncated_tail = true;  // ends in half a step record, as a run being written does
  int seed = 0;
  double t0 = 1.7e9;  // unix time of the run record
  double peak_tflops = 1.5;
};

inline double fixture_loss(const FixtureRun& f, int step) {
  return 2.0 + 4.5 * std::exp(-step / 60.0) + 0.05 * std::sin(step * 1.7 + f.seed);
}
inline double fixture_val_loss(const FixtureRun& f, int step) {
  return fixture_loss(f, step) + 0.1;
}
inline double fixture_lr(const FixtureRun& f, int step) {
  return 5e-4 * std::min(1.0, step / 20.0) * (0.55 + 0.45 * std::cos(M_PI * step / f.planned));
}
inline double fixture_tok_s(const FixtureRun& f, int step) {
  return 20000 + 500 * std::sin(step * 0.3 + f.seed);
}
constexpr double kFixtureMs = 102.4, kFixtureTflops = 0.21, kFixtureCpuPct = 195.0,
                 kFixtureRssMb = 412.5;
constexpr const char* kFixturePrompt = "Once upon a time";
constexpr const char* kFixtureText =
    " there was a little girl named Lily who loved the bright red kiln.";

// Writes <root>/<name>/metrics.jsonl (replacing it) and returns the run directory.
inline std::string write_fixture_run(const std::filesystem::path& root, const FixtureRun& f) {
  namespace fs = std::filesystem;
  const fs::path dir = root / f.name;
  fs::create_directories(dir);
  std::ofstream out(dir / "metrics.jsonl", std::ios::trunc);
  auto line = [&](const nlohmann::json& j) { out << j.dump() << "\n"; };
  line({{"type", "run"},
        {"time", f.t0},
        {"config",
         {{"batch", 8}, {"seq", 256}, {"steps", f.planned}, {"lr", 5e-4}, {"dtype", "bf16"}}},
        {"model", {{"name", "stories260K"}, {"dim", 64}, {"n_layers", 5}}},
        {"params", 260000},
        {"device", "cpu (test)"},
        {"peak_tflops", f.peak_tflops}});
  for (int s = 1; s <= f.steps_done; ++s) {
    const double t = f.t0 + s * kFixtureMs / 1e3;
    line({{"type", "step"},
          {"time", t},
          {"step", s},
          {"tokens", s * 2048},
          {"loss", fixture_loss(f, s)},
          {"lr", fixture_lr(f, s)},
          {"grad_norm", 1.5 * std::exp(-s / 100.0) + 0.3},
          {"ms", kFixtureMs},
          {"tok_s", fixture_tok_s(f, s)},
          {"tflops", kFixtureTflops}});
    if (f.eval_every > 0 && s % f.eval_every == 0)
      line({{"type", "eval"}, {"time", t}, {"step", s}, {"val_loss", fixture_val_loss(f, s)}});
    if (f.sample_every > 0 && s % f.sample_every == 0)
      line({{"type", "sample"},
            {"time", t},
            {"step", s},
            {"prompt", kFixturePrompt},
            {"text", kFixtureText}});
    if (f.system_every > 0 && s % f.system_every == 0)
      line({{"type", "system"},
            {"time", t},
            {"cpu_pct", kFixtureCpuPct},
            {"rss_mb", kFixtureRssMb}});
    if (s == 50) {
      line({{"type", "a_future_record_type"}, {"time", t}, {"x", 1}});
      out << "this line is not JSON\n";
    }
  }
  if (f.finished)
    line({{"type", "report"},
          {"time", f.t0 + 100},
          {"steps", f.steps_done},
          {"total_steps", f.steps_done},
          {"wall_s", 20.5},
          {"compile_s", 3.25},
          {"train_s", 15.36},
          {"ms_per_step", kFixtureMs},
          {"tok_s", 20000.0},
          {"tflops", kFixtureTflops},
          {"peak_tflops", f.peak_tflops},
          {"mfu", kFixtureTflops / f.peak_tflops},
          {"peak_rss_mb", 433.0}});
  if (f.truncated_tail)
    out << R"({"type":"step","time":1.7e9,"step":)" << f.steps_done + 1 << R"(,"loss":2.1)";
  return dir.string();
}

}  // namespace kiln::testing
