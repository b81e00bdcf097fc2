#!/usr/bin/env bash
# Installs what scripts/fuzz-smoke.sh needs on top of scripts/install-deps.sh:
# Debian's clang with its libFuzzer/ASan/UBSan runtimes, and llvm-symbolizer
# (package llvm) so sanitizer reports name files and lines.
# As root it installs the missing ones; otherwise it names them.
set -euo pipefail
KILN_EXTRA_PACKAGES="clang libclang-rt-dev llvm ${KILN_EXTRA_PACKAGES:-}" \
  exec bash "$(dirname "$0")/install-deps.sh"
