#include "train/trainer.h"

#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "backend/backend_factory.h"
#include "backend/gemm_peak.h"
#include "core/error.h"
#include "core/system_stats.h"
#include "core/timer.h"
#include "infer/sample_text.h"
#include "io/checkpoint.h"
#include "nn/model_step.h"
#include "infer/model_dir_info.h"
#include "tokenizer/tokenizer.h"
#include "train/lr_schedule.h"
#include "train/metrics_log.h"
#include "train/model_source.h"
#include "train/optimizer.h"
#include "train/step_benchmark.h"
#include "train/token_data.h"

namespace fs = std::filesystem;

namespace kiln {
namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int sig) {
  if (g_stop) _exit(128 + sig);  // second signal: leave at once (checkpoints are atomic)
  g_stop = 1;
}

// KILN_FAULT_NONFINITE="3,4,5": poison the gradients of those steps (1-based),
// to test the non-finite guard.
std::vector<int64_t> fault_steps() {
  std::vector<int64_t> steps;
  const char* env = std::getenv("KILN_FAULT_NONFINITE");
  if (!env) return steps;
  std::string text = env;
  for (size_t pos = 0; pos < text.size();) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    try {
      steps.push_back(std::stoll(text.substr(pos, comma - pos)));
    } catch (const std::exception&) {
    }
    pos = comma + 1;
  }
  return steps;
}

std::string default_out_dir() {
  char stamp[64];
  std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&now));
  return (fs::path("runs") / stamp).string();
}

double peak_rss_mb() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // ru_maxrss is in KiB on Linux
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = int64_t(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", (long long)(s / 3600),
                  (long long)(s / 60 % 60));
  else if (s >= 60)
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  else
    std::snprintf(buf, sizeof(buf), "%llds", (long long)s);
  return buf;
}

// Everything the loop needs, sized once.
struct Run {
  TrainOptions o;
  ModelConfig config;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<ModelStep> step;
  std::unique_ptr<AdamW> adamw;
  DType dt = DType::f32;
  int64_t P = 0;
  float* params = nullptr;
  float* grads = nullptr;
  void* compute = nullptr;  // == params when fp32
  std::unique_ptr<BatchSource> train, val;
  MetricsLog log;
  int64_t step_done = 0;  // optimizer steps taken
  int64_t tokens_seen = 0;
  LrSchedule schedule;
  GemmPeak peak;
  double train_seconds = 0;
  int64_t steps_this_run = 0;
  std::unique_ptr<Tokenizer> tokenizer;  // for samples (nullable)
  double lr_scale = 1.0;                 // product of --rollback-lr-scale over rollbacks

  // Back to the newest complete checkpoint in --out, with the LR scaled down.
  bool rollback() {
    auto ckpt = latest_valid_checkpoint(o.out, [](const std::string& w) {
      std::fprintf(stderr, "kiln: warning: %s\n", w.c_str());
    });
    if (!ckpt || ckpt->m.empty()) return false;
    const double scale = lr_scale * o.rollback_lr_scale;  // compounds over rollbacks
    restore(*ckpt);
    lr_scale = scale;
    std::fprintf(stderr, "kiln: rolled back to %s, LR scaled by %g\n", ckpt->dir.c_str(), lr_scale);
    log.write("rollback", {{"step", step_done}, {"path", ckpt->dir}, {"lr_scale", lr_scale}});
    return true;
  }

  void restore(const LoadedCheckpoint& ckpt) {
    backend->upload(params, ckpt.params.data(), P * sizeof(float));
    if (compute != params) backend->cast(compute, dt, params, P);
    if (!ckpt.m.empty()) {
      backend->upload(adamw->m(), ckpt.m.data(), P * sizeof(float));
      backend->upload(adamw->v(), ckpt.v.data(), P * sizeof(float));
    }
    step_done = ckpt.state.value("step", int64_t(0));
    tokens_seen = ckpt.state.value("tokens", int64_t(0));
    adamw->set_steps_taken(ckpt.state.value("adam_steps", step_done));
    lr_scale = ckpt.state.value("lr_scale", 1.0);
  }

  ~Run() {
    if (backend) {
      if (compute && compute != params) backend->release(compute);
      backend->release(params);
      backend->release(grads);
    }
  }

  WeightsView weights() const { return {params, compute}; }
  int64_t tokens_per_step() const { return int64_t(o.batch) * o.seq * o.accum; }

  nlohmann::json state_json() const {
    return {{"step", step_done},
            {"tokens", tokens_seen},
            {"seed", o.seed},
            {"sampling", enum_name(o.sampling)},
            {"batch", o.batch},
            {"seq", o.seq},
            {"accum", o.accum},
            {"data_cursor", step_done * o.accum},  // next micro-batch index
            {"adam_steps", adamw->steps_taken()},  // fewer than step when steps were skipped
            {"lr_scale", lr_scale},
            {"dtype", dtype_name(dt)},
            {"threads", omp_get_max_threads()},
            {"tokenizer", o.tokenizer.empty() ? std::string() : fs::absolute(o.tokenizer).string()},
            {"schedule",
             {{"lr", schedule.lr},
              {"warmup", schedule.warmup},
              {"total_steps", schedule.total_steps},
              {"min_lr_frac", schedule.min_lr_frac}}},
            {"optimizer",
             {{"beta1", o.beta1},
              {"beta2", o.beta2},
              {"eps", o.eps},
              {"weight_decay", o.weight_decay},
              {"clip", o.clip}}},
            {"options", options_to_json(o)}};
  }

  std::string checkpoint() {
    std::vector<float> host_params(P), host_m(P), host_v(P);
    backend->download(host_params.data(), params, P * sizeof(float));
    backend->download(host_m.data(), adamw->m(), P * sizeof(float));
    backend->download(host_v.data(), adamw->v(), P * sizeof(float));
    ParamLayout layout(config);
    CheckpointContents c;
    c.config = &config;
    c.layout = &layout;
    c.params = host_params.data();
    c.m = host_m.data();
    c.v = host_v.data();
    c.state = state_json();
    const std::string path = write_checkpoint(o.out, checkpoint_name(step_done), c);
    rotate_checkpoints(o.out, o.keep);
    log.write("checkpoint", {{"step", step_done}, {"path", path}});
    return path;
  }

  // A short generation from the current weights, as a "sample" record. It runs
  // between steps on the training threads (a small model decodes 64 tokens in
  // well under a second) and changes no training state, so resume stays exact.
  void sample() {
    if (!tokenizer) return;
    // Decoded on the training backend from the weights the step reads.
    Generator generator(*backend, config, weights(), std::min(config.max_seq_len, o.sample_tokens + 16));
    SampleSettings settings;
    settings.prompt = o.sample_prompt;
    settings.steps = o.sample_tokens;
    settings.temperature = 0.8f;
    settings.seed = o.seed + uint64_t(step_done);
    SampleResult r = sample_text(generator, *tokenizer, settings, nullptr);
    log.write("sample", {{"step", step_done},
                         {"prompt", o.sample_prompt},
                         {"text", r.text},
                         {"tok_s", r.stats.decode_tokens_per_s()}});
    if (!o.quiet) std::printf("sample step %lld | %s\n", (long long)step_done, r.text.c_str());
  }

  float eval_loss() {
    const int64_t N = int64_t(o.batch) * o.seq;
    std::vector<int32_t> in(N), tgt(N);
    double sum = 0;
    for (int j = 0; j < o.eval_batches; ++j) {
      val->batch(j, in.data(), tgt.data());
      sum += step->forward_loss(weights(), in.data(), tgt.data());
    }
    return float(sum / o.eval_batches);
  }
};

void print_report(Run& run, double wall_s, double compile_s) {
  const double ms = run.steps_this_run > 0 ? 1e3 * run.train_seconds / run.steps_this_run : 0;
  const double tok_s =
      run.train_seconds > 0 ? run.steps_this_run * run.tokens_per_step() / run.train_seconds : 0;
  const double tflops = run.config.train_flops_per_token(run.o.seq) * tok_s / 1e12;
  const double peak = peak_for(run.peak, run.dt);
  const double mfu = peak > 0 ? tflops / peak : 0;
  std::printf("\n=== Efficiency Report ===\n");
  std::printf("  steps              %lld this run (%lld in total)\n", (long long)run.steps_this_run,
              (long long)run.step_done);
  std::printf("  wall time          %.2f s\n", wall_s);
  std::printf("  plan/compile time  %.2f s (model, buffers, weights, GEMM peak)\n", compile_s);
  std::printf("  train time         %.2f s\n", run.train_seconds);
  std::printf("  ms/step            %.1f\n", ms);
  std::printf("  tokens/s           %.0f\n", tok_s);
  std::printf("  achieved           %.3f TFLOPS (%s)\n", tflops, dtype_name(run.dt));
  std::printf("  MFU                %.1f%% of the measured %.3f TFLOPS %s GEMM peak\n", 100 * mfu,
              peak, dtype_name(run.dt));
  std::printf("  peak RSS           %.0f MB\n", peak_rss_mb());
  std::fflush(stdout);
  run.log.write("report", {{"steps", run.steps_this_run},
                           {"total_steps", run.step_done},
                           {"wall_s", wall_s},
                           {"compile_s", compile_s},
                           {"train_s", run.train_seconds},
                           {"ms_per_step", ms},
                           {"tok_s", tok_s},
                           {"tflops", tflops},
                           {"peak_tflops", peak},
                           {"mfu", mfu},
                           {"peak_rss_mb", peak_rss_mb()}});
}

}  // namespace

bool stop_requested() { return g_stop != 0; }

int run_training(TrainOptions o) {
  Timer wall;
  validate_options(o);
  const DTypeChoice choice = o.dtype;

  // --- everything that can reject the input happens before --out is touched ---
  ModelSource source = resolve_model(o.model);
  // A Hugging Face directory brings its tokenizer (for samples, and recorded with
  // the checkpoints so `kiln sample` / `kiln chat` find it).
  if (o.tokenizer.empty()) o.tokenizer = read_model_dir_info(o.model).tokenizer;
  const ModelConfig config = source.config;
  if (o.seq > config.max_seq_len)
    fail_input("--seq", "exceeds the model's max_seq_len",
               "<= " + std::to_string(config.max_seq_len), std::to_string(o.seq));
  TokenStream train_tokens = open_token_data(o.data, config.vocab_size, "--data");
  TokenStream val_tokens = o.val_data.empty()
                               ? TokenStream{}
                               : open_token_data(o.val_data, config.vocab_size, "--val-data");
  if (o.eval_every > 0 && o.val_data.empty())
    fail_input("--eval-every", "needs --val-data", "validation shards", "none");
  std::unique_ptr<Tokenizer> tokenizer;
  if (!o.tokenizer.empty()) {
    tokenizer = load_tokenizer(o.tokenizer);
    if (tokenizer->vocab_size() > config.vocab_size)
      fail_input(o.tokenizer, "tokenizer has more tokens than the model's vocabulary",
                 "<= " + std::to_string(config.vocab_size),
                 std::to_string(tokenizer->vocab_size()));
  } else if (o.sample_every > 0) {
    fail_input("--sample-every", "needs --tokenizer to turn samples into text", "--tokenizer PATH",
               "none");
  }
  if (o.out.empty()) o.out = default_out_dir();
  std::optional<LoadedCheckpoint> resume_from;
  if (o.resume) {
    resume_from = latest_valid_checkpoint(o.out, [](const std::string& w) {
      std::fprintf(stderr, "kiln: warning: %s\n", w.c_str());
    });
    if (resume_from) {
      const ModelConfig& c = resume_from->config;
      if (c.dim != config.dim || c.n_layers != config.n_layers || c.n_heads != config.n_heads ||
          c.n_kv_heads != config.n_kv_heads || c.hidden_dim != config.hidden_dim ||
          c.vocab_size != config.vocab_size || c.tie_embeddings != config.tie_embeddings)
        fail_input(resume_from->dir, "checkpoint has another model shape than --model", config.name,
                   "dim " + std::to_string(c.dim) + ", " + std::to_string(c.n_layers) + " layers");
      const std::vector<std::string> changed = resume_mismatches(o, resume_from->state);
      if (!changed.empty()) {
        std::string got;
        for (const std::string& c : changed) got += (got.empty() ? "" : ", ") + c;
        fail_input(resume_from->dir, "--resume needs the options that decide the batches unchanged",
                   "the checkpoint's values", got);
      }
    }
  } else if (!list_checkpoints(o.out).empty()) {
    fail_input(o.out, "already holds checkpoints of a run",
               "a new --out, or --resume to continue it",
               "step " + std::to_string(list_checkpoints(o.out).back().step));
  }

  Run run;
  run.o = o;
  run.config = config;
  run.tokenizer = std::move(tokenizer);
  BackendRequest request;
  request.device = o.device;
  request.dtype = choice;
  request.threads = o.threads;
  run.backend = make_backend(request);
  run.dt = run.backend->compute_dtype();
  const Sampling sampling = o.sampling;
  run.train = std::make_unique<BatchSource>(train_tokens, o.batch, o.seq, sampling, o.seed);
  if (!o.val_data.empty())
    run.val = std::make_unique<BatchSource>(val_tokens, o.batch, o.seq, Sampling::sequential, 0);
  run.step = std::make_unique<ModelStep>(*run.backend, config, o.batch, o.seq);
  const ParamLayout& layout = run.step->layout();
  run.P = layout.total();
  if (o.compact_vocab) {
    Timer t;
    const std::vector<int32_t> used = used_token_ids(train_tokens, config.vocab_size);
    run.step->set_compact_vocab(used);
    std::printf(
        "kiln: --compact-vocab: the classifier covers the %zu of %d tokens the training data uses "
        "(scanned in %.1f s)\n",
        used.size(), config.vocab_size, t.seconds());
  }

  // --- from here on, --out is written ---
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) fail_runtime(o.out, "cannot create the output directory: " + ec.message());
  // The tokenizer, chat template and generation defaults of a model directory
  // travel with the run (never replacing a file already there).
  copy_generation_files(o.model, o.out);
  const std::vector<std::string> stale = remove_stale_temp_dirs(o.out);
  if (!stale.empty())
    std::printf("kiln: removed %zu temporary checkpoint dir(s) left by an interrupted run in %s\n",
                stale.size(), o.out.c_str());
  run.log.open((fs::path(o.out) / "metrics.jsonl").string());
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  OptimizerConfig oc;
  oc.beta1 = float(o.beta1);
  oc.beta2 = float(o.beta2);
  oc.eps = float(o.eps);
  oc.weight_decay = float(o.weight_decay);
  oc.clip = float(o.clip);
  run.adamw = std::make_unique<AdamW>(*run.backend, layout, oc);
  run.params = static_cast<float*>(run.backend->alloc(run.P * sizeof(float)));
  run.grads = static_cast<float*>(run.backend->alloc(run.P * sizeof(float)));
  std::vector<float> host(run.P);
  const bool resumed = resume_from.has_value();
  if (resumed) {
    host = resume_from->params;
  } else if (!source.params.empty()) {
    host = std::move(source.params);
  } else {
    init_params(config, layout, o.seed, host.data());
  }
  run.backend->upload(run.params, host.data(), run.P * sizeof(float));
  run.compute = run.params;
  if (run.dt != DType::f32) {
    run.compute = run.backend->alloc(run.P * dtype_size(run.dt));
    run.backend->cast(run.compute, run.dt, run.params, run.P);
  }
  if (resumed) {
    run.restore(*resume_from);
    std::printf("kiln: resuming from %s (step %lld)\n", resume_from->dir.c_str(),
                (long long)run.step_done);
  }
  run.schedule.lr = o.lr;
  run.schedule.total_steps = o.steps;
  run.schedule.warmup = o.warmup >= 0 ? o.warmup : std::min<int64_t>(1000, o.steps / 20);
  run.schedule.min_lr_frac = o.min_lr_frac;
  run.peak = gemm_peak(*run.backend, 3.0);
  const double compile_s = wall.seconds();

  // Every option as given, with the values this run resolved them to.
  nlohmann::json cfg = options_to_json(o);
  cfg["warmup"] = run.schedule.warmup;
  cfg["dtype"] = dtype_name(run.dt);
  cfg["threads"] = omp_get_max_threads();
  cfg["model_source"] = source.description;
  run.log.write("run", {{"config", cfg},
                        {"model", config_to_json(config)},
                        {"params", config.num_params()},
                        {"device", run.backend->name()},
                        {"peak_tflops", peak_for(run.peak, run.dt)},
                        {"resumed_from_step", run.step_done}});
  std::printf("kiln: training %s (%.2fM params, %s) on %s\n", config.name.c_str(),
              config.num_params() / 1e6, source.description.c_str(), run.backend->name().c_str());
  std::printf(
      "kiln: B=%d T=%d accum=%d -> %lld tokens/step, %lld steps, activations %.1f MB, out %s\n",
      o.batch, o.seq, o.accum, (long long)run.tokens_per_step(), (long long)o.steps,
      run.step->activation_bytes() / 1e6, o.out.c_str());
  std::fflush(stdout);

  const int64_t N = int64_t(o.batch) * o.seq;
  std::vector<int32_t> inputs(N), targets(N);
  const std::vector<int64_t> faults = fault_steps();
  int64_t last_ckpt = run.step_done;
  int consecutive_skips = 0, rollbacks = 0;
  auto try_checkpoint = [&]() -> bool {
    try {
      const std::string path = run.checkpoint();
      last_ckpt = run.step_done;
      if (!o.quiet) std::printf("kiln: checkpoint %s\n", path.c_str());
      return true;
    } catch (const std::exception& e) {
      std::fprintf(
          stderr,
          "kiln: error: checkpoint at step %lld failed: %s (the previous checkpoint is intact)\n",
          (long long)run.step_done, e.what());
      run.log.write("checkpoint_error", {{"step", run.step_done}, {"error", e.what()}});
      return false;
    }
  };
  int exit_code = 0;
  Timer system_timer;
  if (o.eval_every > 0 && run.step_done == 0) {  // the baseline the curve falls from
    const float val = run.eval_loss();
    run.log.write("eval", {{"step", 0}, {"val_loss", val}});
    std::printf("eval   step 0 | val loss %.4f\n", val);
  }
  while (run.step_done < o.steps && !stop_requested()) {
    Timer step_timer;
    run.backend->zero(run.grads, run.P * sizeof(float));
    double loss = 0;
    for (int micro = 0; micro < o.accum; ++micro) {
      run.train->batch(run.step_done * o.accum + micro, inputs.data(), targets.data());
      loss += run.step->forward_backward(run.weights(), run.grads, inputs.data(), targets.data(),
                                         1.0f / float(o.accum));
    }
    loss /= o.accum;
    if (std::find(faults.begin(), faults.end(), run.step_done + 1) != faults.end()) {
      const float nan = std::nanf("");
      run.backend->upload(run.grads, &nan, sizeof(float));  // fault injection (tests)
    }
    const double lr = run.schedule.at(run.step_done) * run.lr_scale;
    const bool updated = std::isfinite(loss) &&
                         run.adamw->step(run.params, run.dt != DType::f32 ? run.compute : nullptr,
                                         run.dt, run.grads, float(lr));
    const float grad_norm = run.adamw->last_grad_norm();
    run.backend->synchronize();
    const double ms = step_timer.ms();
    run.train_seconds += ms / 1e3;
    ++run.steps_this_run;
    ++run.step_done;
    run.tokens_seen += run.tokens_per_step();
    if (!updated) {
      // Non-finite guard: nothing was updated; the batch is consumed.
      ++consecutive_skips;
      run.log.write("skip",
                    {{"step", run.step_done},
                     {"loss", std::isfinite(loss) ? nlohmann::json(loss) : nlohmann::json("nan")},
                     {"grad_norm",
                      std::isfinite(grad_norm) ? nlohmann::json(grad_norm) : nlohmann::json("nan")},
                     {"consecutive", consecutive_skips}});
      std::fprintf(stderr, "kiln: warning: step %lld skipped: non-finite %s (%d in a row)\n",
                   (long long)run.step_done, std::isfinite(loss) ? "gradient norm" : "loss",
                   consecutive_skips);
      if (consecutive_skips >= o.max_skips) {
        if (o.on_nonfinite == NonFinitePolicy::stop || rollbacks >= 3) {
          std::fprintf(stderr,
                       "kiln: error: %d consecutive non-finite steps at step %lld; stopping "
                       "(---> HINT: lower --lr, raise --warmup, or use --clip)\n",
                       consecutive_skips, (long long)run.step_done);
          exit_code = 1;
          break;
        }
        if (!run.rollback()) {
          std::fprintf(stderr,
                       "kiln: error: %d consecutive non-finite steps and no checkpoint to roll "
                       "back to; stopping "
                       "(---> HINT: lower --lr or use --ckpt-every)\n",
                       consecutive_skips);
          exit_code = 1;
          break;
        }
        ++rollbacks;
        consecutive_skips = 0;
        last_ckpt = run.step_done;
      }
      continue;
    }
    consecutive_skips = 0;
    if (system_timer.seconds() >= 5.0 ||
        run.step_done == 1) {  // CPU %, RSS, power for the dashboard
      run.log.write("system", system_record(getpid()));
      system_timer.reset();
    }
    const double tok_s = run.tokens_per_step() / (ms / 1e3);
    const double tflops = config.train_flops_per_token(o.seq) * tok_s / 1e12;
    run.log.write("step", {{"step", run.step_done},
                           {"tokens", run.tokens_seen},
                           {"loss", loss},
                           {"lr", lr},
                           {"grad_norm", grad_norm},
                           {"ms", ms},
                           {"tok_s", tok_s},
                           {"tflops", tflops}});
    if (!o.quiet) {
      const double eta = (o.steps - run.step_done) * (run.train_seconds / run.steps_this_run);
      std::printf(
          "step %6lld/%lld | loss %.4f | lr %.2e | norm %.3f | %7.1f ms | %7.0f tok/s | ETA %s\n",
          (long long)run.step_done, (long long)o.steps, loss, lr, grad_norm, ms, tok_s,
          format_duration(eta).c_str());
      std::fflush(stdout);
    }
    if (o.eval_every > 0 && (run.step_done % o.eval_every == 0 || run.step_done == o.steps)) {
      const float val = run.eval_loss();
      run.log.write("eval", {{"step", run.step_done}, {"val_loss", val}});
      std::printf("eval   step %lld | val loss %.4f\n", (long long)run.step_done, val);
      std::fflush(stdout);
    }
    if (o.sample_every > 0 && (run.step_done % o.sample_every == 0 || run.step_done == o.steps))
      run.sample();
    if (o.ckpt_every > 0 && run.step_done % o.ckpt_every == 0 && run.step_done < o.steps) {
      if (!try_checkpoint() && o.on_ckpt_error == CkptErrorPolicy::stop) {
        exit_code = 1;
        break;
      }
    }
  }
  if (exit_code == 0 && (run.step_done != last_ckpt || list_checkpoints(o.out).empty())) {
    if (!try_checkpoint()) exit_code = 1;  // the run's final state could not be saved
  }
  if (stop_requested())
    std::printf("kiln: stopped by signal after step %lld\n", (long long)run.step_done);
  print_report(run, wall.seconds(), compile_s);
  if (exit_code != 0) return exit_code;
  return stop_requested() ? 130 : 0;
}

}  // namespace kiln
