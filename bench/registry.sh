#!/bin/sh
# Registry pull throughput and memory: `vessel pull` of a 1 GiB image from a
# local docker-registry (plain HTTP, 127.0.0.1) against `curl` of the same
# blob from the same registry (what the transfer costs without vessel's
# manifest checks, streaming digest and atomic rename), and the peak RSS of
# that pull (/usr/bin/time -v), which must not grow with the image size.
# vessel fsyncs the file before renaming it into place (durable when it
# appears); curl leaves it in the page cache, so a third row, curl then
# `sync FILE`, shows the cost of that durability on this disk.
# One hyperfine run; medians and the ratio to curl.
#
# Usage: bench/registry.sh [RUNS]   (needs docker-registry, hyperfine, curl,
#                                   /usr/bin/time; SIZE_MIB=1024 by default)
set -eu
runs=${1:-5}
size_mib=${SIZE_MIB:-1024}
here=$(cd "$(dirname "$0")/.." && pwd)
for t in docker-registry hyperfine curl python3; do
    command -v "$t" >/dev/null || { echo "error: $t is not installed" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time is not installed (apt-get install time)" >&2; exit 1; }

(cd "$here" && cargo build --quiet --release -p vessel --bin vessel)
vessel="${CARGO_TARGET_DIR:-$here/target}/release/vessel"

work=$(mktemp -d /tmp/vessel-bench-XXXXXX)
reg_pid=""
. "$here/bench/lib.sh"
cleanup() {
    stop_registry
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
start_registry "$work"

export DOCKER_CONFIG="$work/docker"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/image.sif"
ref="oras://$host/bench/image:v1"
"$vessel" -q push --insecure "$work/image.sif" "$ref" >/dev/null
digest="sha256:$(sha256sum "$work/image.sif" | cut -d' ' -f1)"
blob_url="http://$host/v2/bench/image/blobs/$digest"

hyperfine --runs "$runs" --warmup 1 --export-json "$work/h.json" \
    -n "vessel pull (${size_mib} MiB)" "$vessel -q pull --insecure --force $work/pulled.sif $ref" \
    -n "curl blob (${size_mib} MiB)" "curl -sf -o $work/curl.sif $blob_url" \
    -n "curl blob + fsync (${size_mib} MiB)" "curl -sf -o $work/curl.sif $blob_url && sync $work/curl.sif" >/dev/null

/usr/bin/time -v "$vessel" -q pull --insecure --force "$work/pulled.sif" "$ref" 2>"$work/time.txt" >/dev/null
cmp -s "$work/pulled.sif" "$work/image.sif" || { echo "error: pulled bytes differ" >&2; exit 1; }
rss_kib=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$work/time.txt")

python3 - "$work/h.json" "$rss_kib" "$size_mib" <<'EOP'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
base = rows[1]["median"]
print(f"{'what':<36} {'median':>10} {'MiB/s':>8} {'ratio':>6}")
for r in rows:
    m = r["median"]
    print(f"{r['command']:<36} {m*1000:>8.0f}ms {int(sys.argv[3])/m:>8.0f} {m/base:>6.2f}")
print(f"peak RSS of vessel pull: {int(sys.argv[2])/1024:.1f} MiB")
EOP
