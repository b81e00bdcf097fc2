#!/usr/bin/env bash
# Installs the Debian packages Kiln builds with, when any is missing.
# As root it runs `apt-get update` once and installs them; otherwise it names them.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libdnnl-dev            # oneDNN 2.6: GEMM primitives (fp32, bf16 on AMX)
  ocl-icd-opencl-dev     # only a Recommends of libdnnl-dev, but its CMake config requires OpenCL
  nlohmann-json3-dev     # JSON: configs, metrics, checkpoint state
  libcli11-dev           # command-line parsing
  libsentencepiece-dev sentencepiece  # tokenizer
  libxxhash-dev          # checkpoint checksums
  libpng-dev             # kiln report --png
  libpcre2-dev           # tokenizer.json: pre-tokenizer regexes (PCRE2 with JIT)
  libutf8proc-dev        # tokenizer.json: NFC/NFKC/NFD normalizers
  libgtest-dev libgmock-dev libbenchmark-dev  # tests and kernel benchmarks
)
if [[ "${KILN_EXTRA_PACKAGES:-}" != "" ]]; then
  read -r -a extra <<<"$KILN_EXTRA_PACKAGES"
  PACKAGES+=("${extra[@]}")
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "kiln: missing Debian packages: ${missing[*]}" >&2
  echo "kiln: install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "kiln: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
