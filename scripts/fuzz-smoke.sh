#!/usr/bin/env bash
# Builds Kiln's libFuzzer targets (fuzz/: clang, ASan + UBSan) and runs each one
# for a fixed time, starting from its committed seed corpus.
#
#   scripts/fuzz-smoke.sh                       about 60 s in total (CI)
#   KILN_FUZZ_SECONDS=300 scripts/fuzz-smoke.sh  300 s per target (a longer local session)
#   scripts/fuzz-smoke.sh --regen-corpus        rewrite fuzz/corpus/ from Kiln's own writers
#   scripts/fuzz-smoke.sh safetensors config    only the named targets
#
# Fails when any target crashes, hits a sanitizer report, leaks, times out on
# one input, or sees a reader throw anything but kiln::InputError. The input
# that did it is saved as build-fuzz/artifacts/<target>-crash-<sha1> (replay:
# build-fuzz/fuzz_<target> <that file>). New interesting inputs collect in
# build-fuzz/corpus/<target>/ and are reused by the next run; the committed
# seeds in fuzz/corpus/ (made by make_corpus) and the inputs of fixed findings
# in fuzz/regressions/ (kept by hand) are read, never modified.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_FUZZ:-build-fuzz}
CXX_FUZZ=${CXX_FUZZ:-clang++}

cmake -S fuzz -B "$BUILD" -DCMAKE_CXX_COMPILER="$CXX_FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  >/dev/null
cmake --build "$BUILD" -j "${JOBS:-$(nproc)}"

if [[ ${1:-} == --regen-corpus ]]; then
  rm -rf fuzz/corpus
  "$BUILD/make_corpus" fuzz/corpus tests/data/kiln_prose.txt
  exit 0
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in fuzz/fuzz_*.cpp; do
    n=$(basename "$f" .cpp)
    targets+=("${n#fuzz_}")
  done
fi
total=${KILN_FUZZ_TOTAL_SECONDS:-60}
per=${KILN_FUZZ_SECONDS:-$((total / ${#targets[@]}))}
((per < 5)) && per=5

mkdir -p "$BUILD/artifacts"
failed=()
for t in "${targets[@]}"; do
  work="$BUILD/corpus/$t"
  mkdir -p "$work"
  seeds=("fuzz/corpus/$t")
  [[ -d fuzz/regressions/$t ]] && seeds+=("fuzz/regressions/$t")
  args=("$work" "${seeds[@]}" -max_total_time="$per" -max_len=16384 -timeout=10
    -rss_limit_mb=2048 -artifact_prefix="$BUILD/artifacts/$t-" -print_final_stats=1 -print_funcs=0)
  [[ -f fuzz/dict/$t.dict ]] && args+=(-dict="fuzz/dict/$t.dict")
  log="$BUILD/fuzz-$t.log"
  start=$SECONDS
  if "$BUILD/fuzz_$t" "${args[@]}" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz_$t: ${execs:-?} executions in $((SECONDS - start)) s, $cov, no crash"
  else
    failed+=("$t")
    echo "fuzz_$t: FAILED after $((SECONDS - start)) s (log: $log)" >&2
    grep -v -e '^#[0-9]' -e 'NEW_FUNC' "$log" | tail -60 >&2
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "kiln: fuzz smoke failed for: ${failed[*]} (inputs in $BUILD/artifacts/)" >&2
  exit 1
fi
