#!/usr/bin/env bash
# Seeds the corpus with the SIF reference vectors and runs the parser fuzzer.
# Extra arguments go to libFuzzer, e.g. `fuzz/run.sh -max_total_time=60`.
set -euo pipefail
cd "$(dirname "$0")/.."
ref="${VESSEL_SIF_REFERENCE:-testdata/sif-reference}"
mkdir -p fuzz/corpus/parse
cp -n "$ref"/*.sif fuzz/corpus/parse/
exec cargo +nightly fuzz run parse fuzz/corpus/parse -- -max_len=400000 "$@"
