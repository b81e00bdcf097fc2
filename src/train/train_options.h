// The training options, declared once. `TrainOptions::for_each` is the one list
// of them (name, help, limits, how --resume treats them); the CLI's flags and
// --help, validation, the `run` record, trainer_state.json and the --resume
// compatibility check are all visitors of it, so a new option is one line here.
#pragma once
#include <array>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/backend_factory.h"
#include "train/batch_source.h"

namespace kiln {

enum class NonFinitePolicy { rollback, stop };
enum class CkptErrorPolicy { continue_run, stop };

// Each enum option's spellings: the flag value, the JSON value, the help text.
template <typename E>
struct EnumNames;
template <>
struct EnumNames<Sampling> {
  static constexpr std::array<std::pair<Sampling, std::string_view>, 2> values = {
      {{Sampling::random, "random"}, {Sampling::sequential, "sequential"}}};
};
template <>
struct EnumNames<NonFinitePolicy> {
  static constexpr std::array<std::pair<NonFinitePolicy, std::string_view>, 2> values = {
      {{NonFinitePolicy::rollback, "rollback"}, {NonFinitePolicy::stop, "stop"}}};
};
template <>
struct EnumNames<CkptErrorPolicy> {
  static constexpr std::array<std::pair<CkptErrorPolicy, std::string_view>, 2> values = {
      {{CkptErrorPolicy::continue_run, "continue"}, {CkptErrorPolicy::stop, "stop"}}};
};
template <>
struct EnumNames<DTypeChoice> {
  static constexpr std::array<std::pair<DTypeChoice, std::string_view>, 3> values = {
      {{DTypeChoice::auto_, "auto"}, {DTypeChoice::fp32, "fp32"}, {DTypeChoice::bf16, "bf16"}}};
};
template <>
struct EnumNames<DeviceKind> {
  static constexpr std::array<std::pair<DeviceKind, std::string_view>, 2> values = {
      {{DeviceKind::cpu, "cpu"}, {DeviceKind::cuda, "cuda"}}};
};

template <typename E>
std::string enum_name(E value) {
  for (const auto& [v, name] : EnumNames<E>::values)
    if (v == value) return std::string(name);
  return "?";
}
template <typename E>
bool parse_enum(std::string_view text, E* value) {
  for (const auto& [v, name] : EnumNames<E>::values)
    if (name == text) return *value = v, true;
  return false;
}
// "random or sequential", "auto, fp32 or bf16".
template <typename E>
std::string enum_choices() {
  std::string s;
  const auto& values = EnumNames<E>::values;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) s += i + 1 == values.size() ? " or " : ", ";
    s += values[i].second;
  }
  return s;
}

// The interval a number must lie in, closed unless `*_open` is set.
struct Range {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false, max_open = false;
  static Range positive() { return {0, std::numeric_limits<double>::infinity(), true, false}; }
  static Range at_least(double v) { return {v, std::numeric_limits<double>::infinity()}; }
  static Range unit() { return {0, 1}; }                          // [0, 1]
  static Range unit_right_open() { return {0, 1, false, true}; }  // [0, 1)
  static Range unit_left_open() { return {0, 1, true, false}; }   // (0, 1]
  bool contains(double v) const {  // and finite: NaN and Inf are never accepted
    return v - v == 0 && (min_open ? v > min : v >= min) && (max_open ? v < max : v <= max);
  }
  std::string text() const;  // "> 0", ">= 1", "0..1", "0 < x <= 1"
};

// How --resume treats an option: the same value is required (it decides which
// batches come next), or it may change between the runs.
enum class OnResume { may_change, must_match };  // {} in a declaration: may_change

struct OptionInfo {
  const char* name;  // the flag without "--"; the JSON key with '-' as '_'
  const char* help;
  OnResume resume = OnResume::may_change;
  Range range = {};
  bool required = false;  // lists: at least one value
  std::string key() const;
};

struct TrainOptions {
  std::string model = "stories260K";  // preset | config.json | model.bin | CKPT_DIR | RUN_DIR
  std::vector<std::string> data, val_data;
  std::string tokenizer;  // for --sample-every and recorded with checkpoints
  int batch = 8, seq = 256, accum = 1;
  int64_t steps = 100;
  double lr = 5e-4, min_lr_frac = 0.1;
  int64_t warmup = -1;  // -1: 5% of steps (at most 1000)
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, clip = 1.0;
  DTypeChoice dtype = DTypeChoice::auto_;
  DeviceKind device = DeviceKind::cpu;
  int threads = 0;
  uint64_t seed = 1337;
  Sampling sampling = Sampling::random;
  std::string out;  // default runs/<timestamp>
  int64_t ckpt_every = 0;
  int keep = 3;
  int64_t eval_every = 0;
  int eval_batches = 10;
  int64_t sample_every = 0;
  int sample_tokens = 64;
  std::string sample_prompt;  // empty: start from BOS alone
  bool resume = false;
  bool compact_vocab = false;
  bool quiet = false;  // no per-step progress lines
  // Non-finite guard: a step whose loss or grad norm is NaN/Inf is skipped; after
  // max_skips consecutive skips the run rolls back to its last checkpoint with the
  // LR scaled by rollback_lr_scale (rollback), or stops (stop).
  int max_skips = 5;
  NonFinitePolicy on_nonfinite = NonFinitePolicy::rollback;
  double rollback_lr_scale = 0.5;
  CkptErrorPolicy on_ckpt_error = CkptErrorPolicy::stop;

  // Calls visit(const OptionInfo&, Field&) for every option, in --help order.
  template <typename Visitor>
  void for_each(Visitor&& visit) {
    constexpr OnResume same = OnResume::must_match;
    visit(OptionInfo{"model", "Preset, config.json, model.bin, checkpoint or run directory"},
          model);
    visit(OptionInfo{"data", "Training token shards (files or directories)", {}, {}, true}, data);
    visit(OptionInfo{"val-data", "Validation token shards"}, val_data);
    visit(OptionInfo{"tokenizer", "Tokenizer for samples (.model or tokenizer.bin)"}, tokenizer);
    visit(OptionInfo{"batch", "Sequences per micro-batch (B)", same, Range::at_least(1)}, batch);
    visit(OptionInfo{"seq", "Tokens per sequence (T)", same, Range::at_least(1)}, seq);
    visit(OptionInfo{"accum", "Micro-batches per optimizer step", same, Range::at_least(1)}, accum);
    visit(OptionInfo{"steps", "Optimizer steps (0: write the loaded model as step 0)", {},
                     Range::at_least(0)},
          steps);
    visit(OptionInfo{"lr", "Peak learning rate", {}, Range::positive()}, lr);
    visit(OptionInfo{"warmup",
                     "Linear warmup steps (default 5% of --steps, at most 1000)",
                     {},
                     Range::at_least(-1)},
          warmup);
    visit(OptionInfo{"min-lr-frac", "Cosine decays to this fraction of --lr", {}, Range::unit()},
          min_lr_frac);
    visit(OptionInfo{"weight-decay", "AdamW weight decay (matrices only)", {}, Range::at_least(0)},
          weight_decay);
    visit(OptionInfo{"beta1", "AdamW beta1", {}, Range::unit_right_open()}, beta1);
    visit(OptionInfo{"beta2", "AdamW beta2", {}, Range::unit_right_open()}, beta2);
    visit(OptionInfo{"eps", "AdamW epsilon", {}, Range::at_least(0)}, eps);
    visit(OptionInfo{"clip", "Max global grad norm (0 = off)", {}, Range::at_least(0)}, clip);
    visit(OptionInfo{"dtype", "GEMM operand dtype"}, dtype);
    visit(OptionInfo{"device", "Backend device"}, device);
    visit(OptionInfo{"threads", "Threads (0 = all)", {}, Range::at_least(0)}, threads);
    visit(OptionInfo{"seed", "Seed for init and random sampling", same}, seed);
    visit(OptionInfo{"sampling", "Batch order", same}, sampling);
    visit(OptionInfo{"out", "Run directory (default runs/<timestamp>)"}, out);
    visit(
        OptionInfo{
            "ckpt-every", "Checkpoint every N steps (0 = only at the end)", {}, Range::at_least(0)},
        ckpt_every);
    visit(OptionInfo{"keep", "Checkpoints to keep", {}, Range::at_least(1)}, keep);
    visit(
        OptionInfo{"eval-every", "Validation loss every N steps (0 = off)", {}, Range::at_least(0)},
        eval_every);
    visit(OptionInfo{"eval-batches", "Batches per validation", {}, Range::at_least(1)},
          eval_batches);
    visit(
        OptionInfo{
            "sample-every", "Generate a sample every N steps (0 = off)", {}, Range::at_least(0)},
        sample_every);
    visit(OptionInfo{"sample-tokens", "Tokens per sample", {}, Range::at_least(1)}, sample_tokens);
    visit(OptionInfo{"sample-prompt", "Prompt for samples (default: none, from BOS)"},
          sample_prompt);
    visit(OptionInfo{"resume", "Continue from the newest complete checkpoint in --out"}, resume);
    visit(OptionInfo{"compact-vocab", "Classifier over the tokens the data uses", same},
          compact_vocab);
    visit(OptionInfo{"max-skips",
                     "Consecutive non-finite steps before --on-nonfinite acts",
                     {},
                     Range::at_least(1)},
          max_skips);
    visit(OptionInfo{"on-nonfinite", "After --max-skips non-finite steps"}, on_nonfinite);
    visit(
        OptionInfo{
            "rollback-lr-scale", "LR factor after each rollback", {}, Range::unit_left_open()},
        rollback_lr_scale);
    visit(OptionInfo{"on-ckpt-error", "When a checkpoint cannot be written"}, on_ckpt_error);
    visit(OptionInfo{"quiet", "No per-step progress lines"}, quiet);
  }
  template <typename Visitor>
  void for_each(Visitor&& visit) const {
    const_cast<TrainOptions*>(this)->for_each(
        [&](const OptionInfo& info, auto& field) { visit(info, std::as_const(field)); });
  }
};

// InputError naming the flag ("--batch: must be >= 1 ...") for the first option
// outside its range, or a required list left empty.
void validate_options(const TrainOptions& options);

// Every option as JSON (snake_case keys, enums by name): the run record and
// trainer_state.json's "options".
nlohmann::json options_to_json(const TrainOptions& options);

// The must_match options whose value differs from a checkpoint's state
// ("--batch 4 (checkpoint: 8)"), empty when --resume may continue. Reads the
// state's "options", else its top-level keys (checkpoints before "options");
// an option the state does not record is not compared.
std::vector<std::string> resume_mismatches(const TrainOptions& options,
                                           const nlohmann::json& state);

}  // namespace kiln
