// kiln train: flag names are a contract (docs, scripts and the dashboard use them).
#include "cli/command.h"
#include "train/trainer.h"

namespace kiln::cli {
namespace {

RegisterCommand train_command(
    {"train", "Train a model (from scratch, a checkpoint or a llama2.c .bin)",
     [](CLI::App& sub) -> std::function<int()> {
       auto o = std::make_shared<TrainOptions>();
       sub.add_option("--model", o->model, "Preset, config.json, model.bin, checkpoint or run directory");
       sub.add_option("--data", o->data, "Training token shards (files or directories)")->expected(1, -1);
       sub.add_option("--val-data", o->val_data, "Validation token shards")->expected(1, -1);
       sub.add_option("--tokenizer", o->tokenizer, "Tokenizer for samples (.model or tokenizer.bin)");
       sub.add_option("--batch", o->batch, "Sequences per micro-batch (B)");
       sub.add_option("--seq", o->seq, "Tokens per sequence (T)");
       sub.add_option("--accum", o->accum, "Micro-batches per optimizer step");
       sub.add_option("--steps", o->steps, "Optimizer steps (0: write the loaded model as step 0)");
       sub.add_option("--lr", o->lr, "Peak learning rate");
       sub.add_option("--warmup", o->warmup, "Linear warmup steps (default 5% of --steps)");
       sub.add_option("--min-lr-frac", o->min_lr_frac, "Cosine decays to this fraction of --lr");
       sub.add_option("--weight-decay", o->weight_decay, "AdamW weight decay (matrices only)");
       sub.add_option("--beta1", o->beta1, "AdamW beta1");
       sub.add_option("--beta2", o->beta2, "AdamW beta2");
       sub.add_option("--eps", o->eps, "AdamW epsilon");
       sub.add_option("--clip", o->clip, "Max global grad norm (0 = off)");
       sub.add_option("--dtype", o->dtype, "auto | fp32 | bf16");
       sub.add_option("--device", o->device, "cpu | cuda");
       sub.add_option("--threads", o->threads, "Threads (0 = all)");
       sub.add_option("--seed", o->seed, "Seed for init and random sampling");
       sub.add_option("--sampling", o->sampling, "random | sequential");
       sub.add_option("--out", o->out, "Run directory (default runs/<timestamp>)");
       sub.add_option("--ckpt-every", o->ckpt_every, "Checkpoint every N steps (0 = only at the end)");
       sub.add_option("--keep", o->keep, "Checkpoints to keep");
       sub.add_option("--eval-every", o->eval_every, "Validation loss every N steps (0 = off)");
       sub.add_option("--eval-batches", o->eval_batches, "Batches per validation");
       sub.add_option("--sample-every", o->sample_every, "Generate a sample every N steps (0 = off)");
       sub.add_option("--sample-tokens", o->sample_tokens, "Tokens per sample");
       sub.add_option("--sample-prompt", o->sample_prompt, "Prompt for samples (default: none, from BOS)");
       sub.add_flag("--resume", o->resume, "Continue from the newest complete checkpoint in --out");
       sub.add_flag("--compact-vocab", o->compact_vocab, "Classifier over the tokens the data uses");
       sub.add_option("--max-skips", o->max_skips, "Consecutive non-finite steps before --on-nonfinite acts");
       sub.add_option("--on-nonfinite", o->on_nonfinite, "rollback | stop");
       sub.add_option("--rollback-lr-scale", o->rollback_lr_scale, "LR factor after each rollback");
       sub.add_option("--on-ckpt-error", o->on_ckpt_error, "continue | stop (when a checkpoint cannot be written)");
       sub.add_flag("--quiet", o->quiet, "No per-step progress lines");
       return [o]() { return run_training(*o); };
     }});

}  // namespace
}  // namespace kiln::cli
