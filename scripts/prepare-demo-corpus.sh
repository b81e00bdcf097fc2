#!/usr/bin/env bash
# Builds Kiln's offline demo corpus: real English text from Debian's `fortunes`
# package, cleaned into documents, a Kiln-trained 4096-piece tokenizer, and
# token shards with a validation split. Needs no network beyond Debian's own
# package mirror (and none at all once the package is installed).
#
# Corpus: the fortune cookie files of Debian's `fortunes` package (fortune-mod
# 1.99.1; quotations, jokes, definitions and short poems, ~16,000 of them, about
# 2.5 MB of text). Licence: BSD -- Debian ships it in main under fortune(6)'s
# licence, "Copyright (c) 1991 The Regents of the University of California"
# (4.4BSD-Lite terms, advertising clause deleted), as /usr/share/doc/fortunes/copyright
# states. The fortunes are quotations of many authors and keep their "-- Author"
# lines. See docs/DATA.md.
#
# Output (idempotent; rerun does nothing once complete, --force rebuilds):
#   data/demo/fortunes.txt        documents separated by blank lines
#   data/demo/tokenizer.model     SentencePiece BPE, 4096 pieces, Llama settings
#   data/demo/tokenizer.bin       the same tokenizer in llama2.c's format
#   data/demo/shards/             train_0000.bin, val_0000.bin, manifest.json
#
# Environment: KILN (default build/kiln), KILN_DEMO_DIR (default data/demo),
# KILN_DEMO_VOCAB (default 4096), KILN_DEMO_VAL (default 0.05).
set -euo pipefail

cd "$(dirname "$0")/.."
KILN=${KILN:-build/kiln}
OUT=${KILN_DEMO_DIR:-data/demo}
VOCAB=${KILN_DEMO_VOCAB:-4096}
VAL=${KILN_DEMO_VAL:-0.05}
FORTUNES=/usr/share/games/fortunes
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

say() { echo "demo-corpus: $*" >&2; }

if [[ ! -x "$KILN" ]]; then
  say "$KILN not found; build Kiln first (make build)"
  exit 1
fi

# --- 1. the Debian package ------------------------------------------------------
if ! dpkg-query -W -f='${Status}' fortunes 2>/dev/null | grep -q "install ok installed"; then
  if [[ $(id -u) -ne 0 ]]; then
    say "the Debian package 'fortunes' is missing; install it with: sudo apt-get install fortunes"
    exit 1
  fi
  say "installing the Debian package 'fortunes'"
  export DEBIAN_FRONTEND=noninteractive
  # Fresh images often ship with empty package lists.
  if ! apt-cache policy fortunes 2>/dev/null | grep -q "Candidate: [0-9]"; then
    apt-get update -q -o DPkg::Lock::Timeout=300
  fi
  apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 fortunes >&2
fi

mkdir -p "$OUT"
# Generated data stays out of git.
[[ -f "$OUT/.gitignore" ]] || echo "*" > "$OUT/.gitignore"

if [[ $FORCE -eq 0 && -f "$OUT/shards/manifest.json" && -f "$OUT/tokenizer.model" && -f "$OUT/tokenizer.bin" ]] &&
  "$KILN" data stats "$OUT/shards" --tokenizer "$OUT/tokenizer.model" >/dev/null 2>&1; then
  say "already prepared in $OUT (use --force to rebuild)"
  exit 0
fi
start=$(date +%s.%N)

# --- 2. clean the fortunes into documents ---------------------------------------
# Each fortune (records end at a line holding only "%") becomes one document:
# lines trimmed of surrounding whitespace, blank lines inside dropped, very
# short records and ASCII-art-like ones (letters under 60% of the visible
# characters) skipped. Documents are separated by one blank line.
# ascii-art is pictures; translate-me is mostly Latin and German.
files=()
for f in "$FORTUNES"/*; do
  name=$(basename "$f")
  [[ -f "$f" && ! -L "$f" ]] || continue
  [[ "$name" == *.dat || "$name" == ascii-art || "$name" == translate-me ]] && continue
  files+=("$f")
done
if [[ ${#files[@]} -eq 0 ]]; then
  say "no fortune files in $FORTUNES"
  exit 1
fi
LC_ALL=C awk '
  function flush() {
    if (n > 0 && letters >= 20 && letters >= 0.6 * visible) {
      if (docs++ > 0) printf "\n"
      for (i = 1; i <= n; i++) print lines[i]
    }
    n = 0; letters = 0; visible = 0
  }
  FNR == 1 && NR > 1 { flush() }
  /^%[ \t]*$/ { flush(); next }
  {
    line = $0
    sub(/\r$/, "", line)
    gsub(/^[ \t]+|[ \t]+$/, "", line)
    gsub(/\t/, " ", line)
    if (line == "") next
    lines[++n] = line
    tmp = line; letters += gsub(/[A-Za-z]/, "", tmp)
    tmp = line; gsub(/ /, "", tmp); visible += length(tmp)
  }
  END { flush() }
' "${files[@]}" > "$OUT/fortunes.txt.tmp"
mv "$OUT/fortunes.txt.tmp" "$OUT/fortunes.txt"
docs=$(awk 'BEGIN{RS=""} END{print NR}' "$OUT/fortunes.txt")
say "cleaned ${#files[@]} fortune files into $docs documents ($(wc -c < "$OUT/fortunes.txt") bytes)"

# --- 3. tokenizer -----------------------------------------------------------------
"$KILN" tokenizer train --input "$OUT/fortunes.txt" --format text --vocab-size "$VOCAB" \
  --out "$OUT/tokenizer.model"
"$KILN" tokenizer export --tokenizer "$OUT/tokenizer.model" --out "$OUT/tokenizer.bin"

# --- 4. shards ----------------------------------------------------------------------
"$KILN" data prepare --tokenizer "$OUT/tokenizer.model" --input "$OUT/fortunes.txt" --format text \
  --out "$OUT/shards" --val-fraction "$VAL"
"$KILN" data stats "$OUT/shards" --tokenizer "$OUT/tokenizer.model"

end=$(date +%s.%N)
say "done in $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b - a}') s: $OUT"
