#!/usr/bin/env bash
# Benchmarks for vessel-sif, in one run with the release build:
#  1. `vessel sif list` on a 2 GiB sparse SIF vs on the 40 KiB reference
#     one-group.sif (listing reads header + descriptor table only, so the
#     ratio should be ~1);
#  2. `vessel verify` of a signed image holding a 1 GiB object vs
#     `sha256sum` of the same file (verification is one SHA-256 pass over
#     the data, so the ratio should be ~1).
# Needs siftool (to build the test images) and ~3 GiB free in $TMPDIR.
# Usage: bench/sif.sh [LIST_RUNS] [VERIFY_RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
LIST_RUNS="${1:-50}"
VERIFY_RUNS="${2:-3}"
REF="${VESSEL_SIF_REFERENCE:-testdata/sif-reference}"

cargo build --release --quiet -p vessel
VESSEL="${CARGO_TARGET_DIR:-target}/release/vessel"
command -v siftool >/dev/null || { echo "bench: siftool is needed" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/vessel-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export VESSEL_ROOT="$work/root"

# Writes a little-endian int64 at a byte offset of a file.
patch64() {
    local file=$1 off=$2 v=$3 i bytes=""
    for i in 0 1 2 3 4 5 6 7; do bytes+=$(printf '\\x%02x' $(((v >> (8 * i)) & 255))); done
    printf "$bytes" | dd of="$file" bs=1 seek="$off" conv=notrunc status=none
}

# 2 GiB sparse SIF: a real siftool image with one partition whose size is
# then set to 2 GiB, the file extended with a hole.
big="$work/sparse-2g.sif"
printf 'abcd' >"$work/tiny"
siftool new "$big"
siftool add --datatype 4 --partfs 1 --parttype 2 --partarch 2 --groupid 1 "$big" "$work/tiny"
size=$((2 * 1024 * 1024 * 1024))
pad=$((32768 - 32176))
patch64 "$big" $((4096 + 25)) "$size"          # descriptor 1: size
patch64 "$big" $((4096 + 33)) $((size + pad))  # descriptor 1: size with padding
patch64 "$big" $((0x78)) $((size + pad))       # header: data size
truncate -s $((32768 + size)) "$big"
"$VESSEL" sif list "$big" >/dev/null

# Signed image with a 1 GiB object.
obj="$work/obj-1g.bin"
head -c $((1024 * 1024 * 1024)) /dev/urandom >"$obj"
signed="$work/signed-1g.sif"
siftool new "$signed"
siftool add --datatype 4 --partfs 4 --parttype 3 --partarch 2 --groupid 1 "$signed" "$obj"
rm -f "$obj"
"$VESSEL" key newpair --out "$work/bench" >/dev/null
"$VESSEL" sign --key "$work/bench-private.pem" "$signed" >/dev/null

# Mean wall time in seconds of N runs of a command (output discarded).
mean() {
    local n=$1 i t0 t1 total=0
    shift
    for ((i = 0; i < n; i++)); do
        t0=$(date +%s%N)
        "$@" >/dev/null
        t1=$(date +%s%N)
        total=$((total + t1 - t0))
    done
    awk -v t="$total" -v n="$n" 'BEGIN { printf "%.6f", t / n / 1e9 }'
}

# Warm the page cache so both sides of each comparison read from memory.
cat "$signed" >/dev/null

small_t=$(mean "$LIST_RUNS" "$VESSEL" sif list "$REF/one-group.sif")
big_t=$(mean "$LIST_RUNS" "$VESSEL" sif list "$big")
verify_t=$(mean "$VERIFY_RUNS" "$VESSEL" verify --key "$work/bench-public.pem" "$signed")
sha_t=$(mean "$VERIFY_RUNS" sha256sum "$signed")

bytes=$(stat -c %s "$signed")
awk -v s="$small_t" -v b="$big_t" -v v="$verify_t" -v h="$sha_t" -v by="$bytes" \
    -v lr="$LIST_RUNS" -v vr="$VERIFY_RUNS" 'BEGIN {
    mib = by / 1048576
    printf "%-44s %12s %12s\n", "measurement", "mean", "MiB/s"
    printf "%-44s %10.2f ms %12s\n", "vessel sif list one-group.sif (40 KiB), n=" lr, s * 1000, "-"
    printf "%-44s %10.2f ms %12s\n", "vessel sif list sparse-2g.sif (2 GiB), n=" lr, b * 1000, "-"
    printf "%-44s %13.2f\n", "ratio list 2 GiB / 40 KiB", b / s
    printf "%-44s %10.3f s  %12.0f\n", "vessel verify signed-1g.sif, n=" vr, v, mib / v
    printf "%-44s %10.3f s  %12.0f\n", "sha256sum signed-1g.sif, n=" vr, h, mib / h
    printf "%-44s %13.2f\n", "ratio verify / sha256sum (time)", v / h
}'
