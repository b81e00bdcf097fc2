#!/usr/bin/env bash
# Kill/resume chaos check: a tiny training run is SIGKILLed at random moments
# (at least KILLS times, default 24), resumed with --resume after each kill
# until it finishes, and its final weights and optimizer state must be
# byte-for-byte identical to an uninterrupted run with the same flags.
#
#   scripts/chaos.sh                        uses build/kiln (make build first)
#   KILLS=40 SEED=7 STEPS=120 scripts/chaos.sh
#   KILN_BIN=path/to/kiln WORK=/tmp/chaos scripts/chaos.sh
#   VERBOSE=1 scripts/chaos.sh              one line per attempt (when killed, exit, newest checkpoint)
#
# Exit 0 when the weights match, every resumed run started from its newest
# checkpoint without a warning, and no temp dir is left; 1 otherwise (the work
# dir is kept for a look).
set -euo pipefail
cd "$(dirname "$0")/.."
KILN_BIN=${KILN_BIN:-build/kiln}
KILLS=${KILLS:-24}
STEPS=${STEPS:-300}
SEED=${SEED:-$RANDOM}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/kiln-chaos.XXXXXX")}
[[ -x $KILN_BIN ]] || { echo "chaos: $KILN_BIN not found (run make build, or set KILN_BIN)" >&2; exit 1; }
mkdir -p "$WORK/logs"
export XDG_CACHE_HOME=$WORK/cache  # GEMM peak cache of this check only
RANDOM=$SEED
echo "chaos: work dir $WORK, seed $SEED, $STEPS steps, >= $KILLS kills"

# A tiny GQA model and 64K random tokens below its vocabulary (perl is part of
# every Debian install; srand makes the data the same for a given seed).
cat >"$WORK/tiny.json" <<JSON
{"name": "chaos-tiny", "dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
 "hidden_dim": 64, "vocab_size": 256, "max_seq_len": 64, "tie_embeddings": true}
JSON
perl -e 'srand($ARGV[0]); print pack("v*", map { int(rand(256)) } 1 .. 65536)' "$SEED" \
  >"$WORK/tokens.bin"

# The kiln command line for a run into <out dir> of <steps> steps.
train_args() {
  args=(train --model "$WORK/tiny.json" --data "$WORK/tokens.bin" --steps "$2" --batch 2 --seq 32
    --lr 1e-3 --ckpt-every 1 --keep 2 --sampling sequential --threads 1 --dtype fp32 --seed 1234
    --quiet --out "$1")
}
train() {  # train <out dir> <steps> [extra flags...]
  train_args "$1" "$2"
  shift 2
  "$KILN_BIN" "${args[@]}" "$@"
}

# 1. A one-step run: measures the GEMM peak once (cached for the runs below)
#    and how long a run takes to start; then the uninterrupted reference.
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }
train "$WORK/warm" 1 >"$WORK/logs/warm.log" 2>&1 || {
  echo "chaos: a one-step run failed:" >&2
  tail -20 "$WORK/logs/warm.log" >&2
  exit 1
}
rm -rf "$WORK/warm"
start=$(date +%s.%N)
train "$WORK/warm" 1 >"$WORK/logs/warm.log" 2>&1
startup_s=$(elapsed "$start")
start=$(date +%s.%N)
train "$WORK/ref" "$STEPS" >"$WORK/logs/ref.log" 2>&1 || {
  echo "chaos: the reference run failed:" >&2
  tail -20 "$WORK/logs/ref.log" >&2
  exit 1
}
ref_s=$(elapsed "$start")
final=$(printf 'step-%06d' "$STEPS")
[[ -f $WORK/ref/$final/model.safetensors ]] || { echo "chaos: reference has no $final" >&2; exit 1; }
echo "chaos: a run starts in ${startup_s} s, the reference took ${ref_s} s"

# When to kill. Timing alone is unreliable (fsync latency varies tenfold on a
# busy disk), so most kills follow the run's progress: kill i waits until the
# newest checkpoint reaches a random step target_i (sorted, below STEPS - 4),
# then a random jitter of up to two steps' time, so it lands anywhere in a
# step or a checkpoint write. A repeated target kills a run right after it
# resumed. Every fifth kill instead comes at a random moment of the start
# (reading and verifying the checkpoint), within twice the start-up time.
step_s=$(awk -v t="$ref_s" -v s="$startup_s" -v n="$STEPS" 'BEGIN { printf "%.6f", (t - s) / n }')
mapfile -t targets < <(for ((i = 0; i < KILLS; i++)); do
  echo $((1 + RANDOM % (STEPS - 5)))
done | sort -n)
newest_step() {
  local newest
  newest=$(find "$WORK/chaos" -maxdepth 1 -name 'step-*' -printf '%f\n' 2>/dev/null | sort | tail -1)
  if [[ -n $newest ]]; then echo $((10#${newest#step-})); else echo 0; fi
}
random_below() { awk -v r="$RANDOM" -v m="$1" 'BEGIN { printf "%.4f", r / 32768 * m }'; }

# 2. The same run, killed and resumed until it completes.
kills=0
attempts=0
while :; do
  attempts=$((attempts + 1))
  log=$WORK/logs/attempt-$attempts.log
  # kiln itself in the background (not a shell function, whose subshell
  # would take the SIGKILL while kiln ran on).
  train_args "$WORK/chaos" "$STEPS"
  "$KILN_BIN" "${args[@]}" --resume >"$log" 2>&1 &
  pid=$!
  how=none
  if ((kills < KILLS)); then
    if ((kills % 5 == 4)); then
      delay=$(random_below "$(awk -v s="$startup_s" 'BEGIN { print 2 * s }')")
      sleep "$delay"
      how="$delay s into the start"
    else
      target=${targets[$kills]}
      while kill -0 "$pid" 2>/dev/null && (($(newest_step) < target)); do sleep 0.005; done
      jitter=$(random_below "$(awk -v s="$step_s" 'BEGIN { print 2 * s }')")
      sleep "$jitter"
      how="after step $target + $jitter s"
    fi
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rc=0
  wait "$pid" 2>/dev/null || rc=$?
  if [[ ${VERBOSE:-0} == 1 ]]; then
    echo "chaos: attempt $attempts: kill $how, exit $rc, newest checkpoint step $(newest_step)"
  fi
  if ((rc == 137)); then
    kills=$((kills + 1))
    continue
  fi
  if ((rc != 0)); then
    echo "chaos: attempt $attempts exited with $rc (not a kill):" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  break  # finished on its own
done
echo "chaos: $kills kills in $attempts attempts"

# 3. Checks.
status=0
if grep -l "warning" "$WORK"/logs/attempt-*.log >/dev/null 2>&1; then
  # Checkpoints are written to a temp dir and renamed, so a kill can never leave
  # a damaged newest checkpoint: a resume that had to skip one is a failure.
  echo "chaos: FAIL: resume warnings (a damaged newest checkpoint was skipped):" >&2
  grep -h "warning" "$WORK"/logs/attempt-*.log | sort | uniq -c | head -20 >&2
  status=1
fi
for f in model.safetensors optimizer.safetensors; do
  if cmp -s "$WORK/ref/$final/$f" "$WORK/chaos/$final/$f"; then
    echo "chaos: $final/$f identical to the uninterrupted run"
  else
    echo "chaos: MISMATCH: $final/$f differs from the uninterrupted run" >&2
    status=1
  fi
done
leftover=$(find "$WORK/chaos" -maxdepth 1 -name '.tmp-*' | wc -l)
if ((leftover > 0)); then
  # Each run removes the temp dirs of the killed runs before it; none may survive the last.
  echo "chaos: $leftover temporary checkpoint dir(s) left by killed runs in $WORK/chaos:" >&2
  find "$WORK/chaos" -maxdepth 1 -name '.tmp-*' -printf '  %f\n' | head -5 >&2
  status=1
fi
if ((kills < KILLS)); then
  echo "chaos: only $kills kills landed (wanted $KILLS): the run finished early; raise STEPS" >&2
  status=1
fi
if ((status == 0)); then
  echo "chaos: PASS"
  [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$WORK"
else
  echo "chaos: FAIL (work dir kept: $WORK)" >&2
fi
exit $status
