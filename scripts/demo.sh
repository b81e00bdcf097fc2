#!/usr/bin/env bash
# make demo: the main job end to end on an offline default.
#   1. the demo corpus (Debian's `fortunes`, a Kiln-trained 4096-piece tokenizer, shards)
#   2. train a 6M-parameter Llama (configs/demo.json) from scratch, with validation
#   3. sample a few lines from the trained model
# The efficiency report is printed at the end of training.
# Environment: KILN_DEMO_STEPS (default 500), KILN_DEMO_OUT (default runs/demo),
# KILN_DEMO_MIN_DROP (default 2.0): the demo fails unless the validation loss fell
# by at least this many nats (500 steps measured: 8.36 -> 5.15).
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-build/kiln}
STEPS=${KILN_DEMO_STEPS:-500}
MIN_DROP=${KILN_DEMO_MIN_DROP:-2.0}
OUT=${KILN_DEMO_OUT:-runs/demo}

bash scripts/prepare-demo-corpus.sh

if [[ -d "$OUT" ]]; then
  echo "demo: replacing the previous demo run in $OUT"
  rm -rf "$OUT"
fi
echo
echo "demo: training configs/demo.json for $STEPS steps (B=16, T=128) -> $OUT"
"$KILN" train --model configs/demo.json \
  --data data/demo/shards --val-data data/demo/shards --tokenizer data/demo/tokenizer.model \
  --batch 16 --seq 128 --steps "$STEPS" --lr 2e-3 --warmup 30 --min-lr-frac 0.1 \
  --weight-decay 0.1 --clip 1.0 --eval-every 100 --eval-batches 8 --sample-every 250 \
  --ckpt-every 250 --out "$OUT"

echo
report_val_loss() {
  # The validation loss must have clearly fallen: last eval well below the first.
  local first last
  first=$(grep '"type":"eval"' "$OUT/metrics.jsonl" | head -1 | sed 's/.*"val_loss":\([0-9.eE+-]*\).*/\1/')
  last=$(grep '"type":"eval"' "$OUT/metrics.jsonl" | tail -1 | sed 's/.*"val_loss":\([0-9.eE+-]*\).*/\1/')
  echo "demo: validation loss $first (before training) -> $last (step $STEPS)"
  if [[ -z $first || -z $last ]] ||
    ! awk -v f="$first" -v l="$last" -v d="$MIN_DROP" 'BEGIN { exit !(f - l >= d) }'; then
    echo "demo: FAIL: the validation loss did not fall by $MIN_DROP (from '$first' to '$last')" >&2
    exit 1
  fi
}
report_val_loss

echo
for prompt in "The" "A man" "Love is"; do
  echo "--- kiln sample --prompt \"$prompt\""
  "$KILN" sample --model "$OUT" --prompt "$prompt" --steps 60 --temperature 0.8 --top-p 0.9 --seed 7
done
echo
echo "demo: done. Watch a run live with: $KILN dash $OUT    (HTML report: $KILN report $OUT --out report.html)"
