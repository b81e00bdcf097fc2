#!/usr/bin/env bash
# The GPU check of Kiln's CUDA backend, for a session that has a lent GPU machine.
#
# The device image has CUDA 13, CMake and PyTorch but not Kiln's CPU-side libraries
# (oneDNN, GoogleTest, Google Benchmark, SentencePiece, ...), so the binaries are built
# HERE, where those are installed, and travel with the call:
#
#   1. here:    scripts/gpu-check.sh prepare
#               configures + builds build-gpu with CUDA (sm_90a + compute_80 PTX) and packs
#               kiln, test_cuda_ops, kiln_kernel_bench and the shared libraries the device
#               lacks into build-gpu/carry/kiln-gpu.tar.gz (ignored by git, < 64 MiB).
#   2. device:  run(command="bash scripts/gpu-check.sh run", carry=["build-gpu/carry"],
#                   timeout_s=600)
#               unpacks, then in order, each phase with its own time cap inside a total
#               budget (KILN_GPU_BUDGET_S, default 560 s; a phase that would start past it
#               is skipped and named in the summary):
#                 info      nvidia-smi, the toolkit, the libraries found
#                 tests     build-gpu/tests/test_cuda_ops with KILN_REQUIRE_CUDA=1 (every
#                           CUDA op vs the oracle, the whole model step, graph replay; a
#                           missing device fails instead of skipping)
#                 memcheck  compute-sanitizer --tool memcheck on test_cuda_ops
#                 bench     kiln bench --device cuda: stories110M T=256 B=64,128,256 and
#                           configs/qwen2.5-0.5b.json T=512 B=16,32 (falls back to
#                           kiln_kernel_bench's BM_CudaStep when --device cuda is not wired)
#                 peer      bench/peer_pytorch.py --device cuda --compile --bf16 on
#                           stories110M B=256 and qwen2.5-0.5b B=32 (the issue's targets)
#                 kernels   kiln_kernel_bench --benchmark_filter='BM_CudaMatmul|BM_CudaAttention'
#               Run a subset with e.g. `bash scripts/gpu-check.sh run tests memcheck`.
#               Logs go to $OUT (at most 8 files): gpu-check.log (everything),
#               tests.log, memcheck.log, bench.txt, peer.jsonl, kernels.log, summary.txt.
#   Then give_back. If a phase hits its cap, the summary says so; rerun just that phase.
#
# Where the device image does have every dependency, `run` builds there instead.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CARRY=build-gpu/carry/kiln-gpu.tar.gz
NVCC=${CUDACXX:-/usr/local/cuda/bin/nvcc}

prepare() {
  set -e
  local t0=$SECONDS
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DKILN_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$NVCC" >/dev/null
  cmake --build build-gpu -j"${JOBS:-2}" --target kiln test_cuda_ops kiln_kernel_bench
  echo "build: $((SECONDS - t0)) s"
  local stage=build-gpu/carry/stage
  rm -rf build-gpu/carry && mkdir -p "$stage/bin" "$stage/lib"
  cp build-gpu/kiln build-gpu/tests/test_cuda_ops build-gpu/bench/kiln_kernel_bench "$stage/bin/"
  # Every shared library the binaries load, except the C and C++ runtimes (the device
  # image's are newer) and CUDA's own (its driver and toolkit match its GPU).
  for bin in "$stage"/bin/*; do
    ldd "$bin" | awk '/=> \//{print $3}'
  done | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libgcc_s.so*|libstdc++.so*) ;;
      libcuda.so*|libcudart.so*|libcublas*.so*|libnvidia*) ;;
      *) cp -L "$lib" "$stage/lib/" ;;
    esac
  done
  tar czf "$CARRY" -C "$stage" .
  rm -rf "$stage"
  ls -l "$CARRY"
  local bytes
  bytes=$(stat -c %s "$CARRY")
  if (( bytes > 60 * 1024 * 1024 )); then
    echo "warning: $CARRY is $((bytes >> 20)) MiB; a device call carries at most 64 MiB" >&2
  fi
  echo "next: run(command=\"bash scripts/gpu-check.sh run\", carry=[\"build-gpu/carry\"], timeout_s=600)"
}

# --- device side ----------------------------------------------------------------------
OUT=${OUT:-$ROOT/gpu-check-out}
BUDGET=${KILN_GPU_BUDGET_S:-560}
LOG="$OUT/gpu-check.log"
SUMMARY="$OUT/summary.txt"
BIN=""

say() { echo "$*" | tee -a "$LOG" "$SUMMARY"; }

# Seconds a phase may take: its cap, or what is left of the budget.
cap() {
  local want=$1 left=$((BUDGET - SECONDS))
  (( left < want )) && want=$left
  (( want < 5 )) && want=0
  echo "$want"
}

# run_phase NAME CAP_S COMMAND...: runs with a time limit, logs, records the outcome.
run_phase() {
  local name=$1 limit
  limit=$(cap "$2")
  shift 2
  if (( limit == 0 )); then
    say "[$name] SKIPPED: the ${BUDGET}s budget is spent"
    return 0
  fi
  echo "=== [$name] $* (cap ${limit}s)" >>"$LOG"
  local t0=$SECONDS rc
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  if (( rc == 124 || rc == 137 )); then
    say "[$name] TIMED OUT after ${limit}s: $*"
  else
    say "[$name] rc=$rc in $((SECONDS - t0))s: $*"
  fi
  return $rc
}

find_cuda_libs() {
  local dirs=() d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64; do
    [[ -e $d/libcudart.so.13 || -e $d/libcublasLt.so.13 || -e $d/libcuda.so.1 ]] && dirs+=("$d")
  done
  # PyTorch's wheels carry cuBLAS and the runtime too.
  while read -r d; do dirs+=("$d"); done < <(python3 - <<'EOF' 2>/dev/null
import glob, os, site
for base in site.getsitepackages():
    for lib in glob.glob(os.path.join(base, "nvidia", "*", "lib")):
        if glob.glob(os.path.join(lib, "libcublas*.so.13")) or glob.glob(os.path.join(lib, "libcudart.so.13")):
            print(lib)
EOF
  )
  (IFS=:; echo "${dirs[*]}")
}

setup_binaries() {
  if [[ -f $CARRY ]]; then
    BIN=/tmp/kiln-gpu
    rm -rf "$BIN" && mkdir -p "$BIN" && tar xzf "$CARRY" -C "$BIN"
    local cuda_libs
    cuda_libs=$(find_cuda_libs)
    export LD_LIBRARY_PATH="$BIN/lib:$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    say "binaries: unpacked $CARRY (prepared off the device)"
    return 0
  fi
  say "binaries: no $CARRY; building on the device"
  if cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DKILN_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC" \
      >>"$LOG" 2>&1 && cmake --build build-gpu -j"$(nproc)" --target kiln test_cuda_ops kiln_kernel_bench >>"$LOG" 2>&1; then
    BIN=/tmp/kiln-gpu && mkdir -p "$BIN/bin"
    cp build-gpu/kiln build-gpu/tests/test_cuda_ops build-gpu/bench/kiln_kernel_bench "$BIN/bin/"
    return 0
  fi
  say "binaries: the device build failed (see gpu-check.log); run 'scripts/gpu-check.sh prepare' here and carry build-gpu/carry"
  return 1
}

phase_info() {
  {
    nvidia-smi || true
    "$NVCC" --version 2>/dev/null | tail -2 || true
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    ldd "$BIN/bin/test_cuda_ops" | grep -E "not found|cuda|cublas" || true
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" || true
  } >>"$LOG" 2>&1
  say "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
}

phase_tests() {
  run_phase tests 150 bash -c "set -o pipefail; KILN_REQUIRE_CUDA=1 '$BIN/bin/test_cuda_ops' 2>&1 | tee '$OUT/tests.log' | tail -40"
  grep -E "^\[(==========|  PASSED  |  FAILED  )\]|SKIPPED \] [0-9]+ tests?," "$OUT/tests.log" 2>/dev/null \
    | head -40 >>"$SUMMARY"
}

bench_one() {  # MODEL BATCH SEQ
  run_phase "bench $1 B=$2 T=$3" 90 bash -c "'$BIN/bin/kiln' bench --device cuda --model '$1' \
    --batch $2 --seq $3 --steps 5 --warmup 2 --dtype bf16 --json | tail -1 >>'$OUT/bench.txt'"
}

phase_bench() {
  # Is --device cuda wired into kiln bench? A tiny model answers in seconds.
  if timeout 60 "$BIN/bin/kiln" bench --device cuda --model stories260K --batch 1 --seq 8 --steps 1 \
      --warmup 0 --dtype bf16 --json >>"$LOG" 2>&1; then
    bench_one stories110M 64 256
    bench_one stories110M 128 256
    bench_one stories110M 256 256
    bench_one configs/qwen2.5-0.5b.json 16 512
    bench_one configs/qwen2.5-0.5b.json 32 512
  else
    say "[bench] kiln bench --device cuda failed on stories260K (not wired yet?): timing BM_CudaStep (eager step, no graph) instead"
    run_phase "bench BM_CudaStep" 240 bash -c "'$BIN/bin/kiln_kernel_bench' --benchmark_filter=BM_CudaStep \
      >>'$OUT/bench.txt' 2>&1"
  fi
  [[ -f $OUT/bench.txt ]] && tail -8 "$OUT/bench.txt" >>"$SUMMARY"
}

peer_one() {  # MODEL BATCH SEQ
  run_phase "peer $1 B=$2 T=$3" 170 bash -c "PYTHONUNBUFFERED=1 python3 bench/peer_pytorch.py --model $1 \
    --batch $2 --seq $3 --steps 5 --warmup 2 --device cuda --compile --bf16 | tail -1 >>'$OUT/peer.jsonl'"
}

phase_peer() {
  peer_one stories110M 256 256
  peer_one qwen2.5-0.5b 32 512
  [[ -f $OUT/peer.jsonl ]] && cat "$OUT/peer.jsonl" >>"$SUMMARY"
}

phase_kernels() {
  run_phase kernels 120 bash -c "'$BIN/bin/kiln_kernel_bench' --benchmark_filter='BM_CudaMatmul|BM_CudaAttention' \
    2>&1 | tee '$OUT/kernels.log' | tail -15"
}

phase_memcheck() {
  local sanitizer
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
  if [[ -z $sanitizer ]]; then
    say "[memcheck] no compute-sanitizer found"
    return 0
  fi
  run_phase memcheck 200 bash -c "KILN_REQUIRE_CUDA=1 '$sanitizer' --tool memcheck --leak-check full --error-exitcode 3 \
    '$BIN/bin/test_cuda_ops' --gtest_brief=1 2>&1 | tee '$OUT/memcheck.log' | tail -25"
  grep -E "ERROR SUMMARY|LEAK SUMMARY" "$OUT/memcheck.log" 2>/dev/null | tail -3 >>"$SUMMARY"
}

run_all() {
  mkdir -p "$OUT"
  : >"$SUMMARY"
  local phases=("$@")
  (( ${#phases[@]} == 0 )) && phases=(tests memcheck bench peer kernels)
  setup_binaries || { cp "$SUMMARY" /dev/stdout; return 1; }
  phase_info
  for p in "${phases[@]}"; do "phase_$p"; done
  echo "===== summary ($SECONDS s)"
  cat "$SUMMARY"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run_all "$@" ;;
  *)
    echo "usage: scripts/gpu-check.sh prepare            (here: build and pack for the device)" >&2
    echo "       scripts/gpu-check.sh run [phases...]     (on the GPU machine; phases: tests bench peer kernels memcheck)" >&2
    exit 2
    ;;
esac
