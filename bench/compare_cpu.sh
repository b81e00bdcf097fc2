#!/usr/bin/env bash
# Kiln vs the PyTorch peer on the CPU, same shape, same threads, same machine,
# alternating runs (A B A B ...) so drift hits both. Prints each run's tokens/s
# and the per-pair ratio; the medians go to BENCHMARKS.md.
#   bench/compare_cpu.sh [MODEL] [BATCH] [SEQ] [PAIRS] [KILN_DTYPE]
# Needs Debian's python3-torch (PyTorch 1.13, fp32) and libopenblas0-pthread: Debian's torch
# calls the system libblas.so.3, and without OpenBLAS installed that is the reference BLAS
# (one thread, about 30x slower here), which would flatter Kiln.
#   apt-get install python3-torch libopenblas0-pthread
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-stories110M}
B=${2:-4}
T=${3:-256}
PAIRS=${4:-3}
DTYPE=${5:-auto}
THREADS=$(nproc)
KILN=${KILN:-build/kiln}
tok_s() { sed -n 's/.*"tok_s": *\([0-9.eE+-]*\).*/\1/p' | tail -1; }
echo "model $MODEL B=$B T=$T threads=$THREADS kiln dtype=$DTYPE, $PAIRS pairs"
for i in $(seq "$PAIRS"); do
  k=$("$KILN" bench --model "$MODEL" --batch "$B" --seq "$T" --steps 3 --dtype "$DTYPE" --threads "$THREADS" --json | tok_s)
  p=$(/usr/bin/python3 bench/peer_pytorch.py --model "$MODEL" --batch "$B" --seq "$T" --steps 3 --threads "$THREADS" | tok_s)
  awk -v i="$i" -v k="$k" -v p="$p" 'BEGIN { printf "pair %d: kiln %.1f tok/s, pytorch %.1f tok/s, ratio %.2fx\n", i, k, p, k / p }'
done
