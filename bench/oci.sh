#!/bin/sh
# OCI image build cost: `vessel build OUT docker://…` of a ~100 MB image in
# four layers from a local docker-registry (plain HTTP, 127.0.0.1), with an
# empty cache each run, against what the same takes with the usual tools:
# `skopeo copy` to an OCI layout + `umoci unpack` + `mksquashfs` (same
# mksquashfs options as vessel). One hyperfine run; medians and the ratio to
# the tools (the target is <= 1).
#
# Usage: bench/oci.sh [RUNS]   (needs docker-registry, skopeo, umoci,
#                              hyperfine, busybox-static; SIZE_MIB=96)
set -eu
runs=${1:-3}
size_mib=${SIZE_MIB:-96}
here=$(cd "$(dirname "$0")/.." && pwd)
for t in docker-registry skopeo umoci hyperfine mksquashfs python3 curl; do
    command -v "$t" >/dev/null || { echo "error: $t is not installed" >&2; exit 1; }
done

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

# The image: busybox, then three layers of files (half random, half text).
img="$work/img"
umoci init --layout "$img"
umoci new --image "$img:v1"
per_layer=$((size_mib / 3))
for n in 1 2 3; do
    umoci unpack --rootless --image "$img:v1" "$work/bundle"
    r="$work/bundle/rootfs"
    mkdir -p "$r/bin" "$r/data$n"
    [ -e "$r/bin/busybox" ] || cp /bin/busybox "$r/bin/busybox"
    for f in $(seq 1 "$per_layer"); do
        if [ $((f % 2)) -eq 0 ]; then
            head -c 1048576 /dev/urandom >"$r/data$n/f$f"
        else
            yes "layer $n file $f" | head -c 1048576 >"$r/data$n/f$f"
        fi
    done
    umoci repack --image "$img:v1" "$work/bundle"
    rm -rf "$work/bundle"
done
skopeo copy -q --dest-tls-verify=false "oci:$img:v1" "docker://$host/bench/oci:v1"
ref="docker://$host/bench/oci:v1"
export VESSEL_ROOT="$work/root" DOCKER_CONFIG="$work/docker"
mkdir -p "$VESSEL_ROOT"

hyperfine --runs "$runs" --export-json "$work/h.json" \
    -n "vessel build docker:// (${size_mib} MiB)" \
    --prepare "rm -rf $VESSEL_ROOT/var/cache $work/out.sif" \
    "$vessel -q build --insecure $work/out.sif $ref" \
    -n "skopeo + umoci + mksquashfs" \
    --prepare "rm -rf $work/l $work/b $work/b.sqfs" \
    "skopeo copy -q --src-tls-verify=false $ref oci:$work/l:v1 && umoci unpack --rootless --image $work/l:v1 $work/b && mksquashfs $work/b/rootfs $work/b.sqfs -noappend -no-progress -quiet" \
    >/dev/null

python3 - "$work/h.json" <<'EOP'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
base = rows[1]["median"]
print(f"{'what':<36} {'median':>10} {'ratio':>6}")
for r in rows:
    print(f"{r['command']:<36} {r['median']*1000:>8.0f}ms {r['median']/base:>6.2f}")
EOP
