#!/bin/sh
# What installed plugins cost, each row as a ratio to a baseline measured in
# the same run (medians of interleaved runs, bench/interleave.py; goals
# from issue 13):
#
#   vessel --help, 100 plugins vs 0                          goal <= 1.3x
#   vessel version, 100 command-only plugins vs 0            goal <= 1.1x
#   vessel exec SANDBOX /bin/true, 100 command-only vs 0     goal <= 1.1x
#   vessel exec SANDBOX /bin/true, one no-op EngineConfig
#     plugin vs none                                         goal <= +1 ms
#   plugin load (vessel's loader: ownership, sha256, ELF,
#     sealed memfd, dlopen, API/layout checks, init) vs a
#     bare read + sha256 + dlopen of the same file           goal <= 2x
#   vessel plugin list (10, 100 plugins vs 0), for reference
#
# The 100 command-only plugins: one real plugin (`bench.example.com/cmd-000`,
# compiled from a template and installed) and 99 copies of its meta under
# other names, each with its own command: exactly what start-up and exec
# read. The load row times one load per fresh process (plugin_load, a helper
# in runtime/examples), alternating the two kinds, and compares medians.
#
# Usage: sudo bench/plugins.sh [RUNS]   (needs python3, busybox)
set -eu
runs=${1:-40}
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "error: run as root (plugin install is root-only)" >&2; exit 1; }
for t in python3 busybox; do
    command -v "$t" >/dev/null || { echo "error: $t is not installed" >&2; exit 1; }
done

(cd "$here" && cargo build --quiet --release -p vessel --bin vessel --example plugin_load)
target="${CARGO_TARGET_DIR:-$here/target}/release"
vessel="$target/vessel"
loadhelper="$target/examples/plugin_load"
work=$(mktemp -d /tmp/vessel-bench-plugins-XXXXXX)
# Installed plugin libraries are immutable (chattr +i): cleared first.
trap 'chattr -R -i "$work" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM

# Two tiny plugins, compiled inside the source tree (target/bench-plugins).
plugsrc="$here/target/bench-plugins"
mkdir -p "$plugsrc"
plugin() { # NAME BUILDER-BODY
    d="$plugsrc/src-$(echo "$1" | tr ./ --)"
    rm -rf "$d"
    "$vessel" plugin create "$d" "$1" >/dev/null
    cat >"$d/src/lib.rs" <<EOF
use vessel_plugin_api::Plugin;
#[allow(unused_imports)]
use vessel_plugin_api::Command;
pub fn build() -> Plugin {
    Plugin::new("$1").version("0.1.0")$2
}
vessel_plugin_api::export_plugin!(build);
EOF
    "$vessel" plugin compile --out "$work/$(basename "$d").sif" "$d" >"$work/compile.log" 2>&1 ||
        { cat "$work/compile.log" >&2; echo "error: plugin compile $1 failed" >&2; exit 1; }
    echo "$work/$(basename "$d").sif"
}
cmd_sif=$(plugin bench.example.com/cmd-000 \
    '.command(Command::new("bench-cmd-000").about("benchmark filler"), |_| Ok(0))')
cfg_sif=$(plugin bench.example.com/noop-config '.engine_config(|_| Ok(()))')

# A busybox sandbox to exec.
rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp" "$rootfs/etc"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
ln -s busybox "$rootfs/bin/true"
ln -s busybox "$rootfs/bin/sh"

make_root() { # N [SIF]: N command-only plugins, or just SIF
    r="$work/root$1${2:+-cfg}"
    mkdir -p "$r"
    if [ -n "${2:-}" ]; then
        VESSEL_ROOT="$r" "$vessel" plugin install --yes --allow-unsigned "$2" >/dev/null 2>&1
    elif [ "$1" -gt 0 ]; then
        VESSEL_ROOT="$r" "$vessel" plugin install --yes --allow-unsigned "$cmd_sif" >/dev/null 2>&1
        python3 - "$r/usr/local/libexec/vessel/plugins/metas" "$1" <<'PY'
import hashlib, json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
src = next(f for f in os.listdir(d) if f.endswith(".meta"))
meta = json.load(open(os.path.join(d, src)))
for i in range(1, n):
    m = json.loads(json.dumps(meta))
    name = f"bench.example.com/cmd-{i:03}"
    m["manifest"]["name"] = name
    m["manifest"]["commands"][0]["name"] = f"bench-cmd-{i:03}"
    h = hashlib.sha256(name.encode()).hexdigest()
    with open(os.path.join(d, h + ".meta"), "w") as f:
        json.dump(m, f)
PY
    fi
    echo "$r"
}
r0=$(make_root 0); r10=$(make_root 10); r100=$(make_root 100); rcfg=$(make_root 1 "$cfg_sif")
[ "$(VESSEL_ROOT=$r100 "$vessel" plugin list | wc -l)" = 101 ] || { echo "error: setup failed" >&2; exit 1; }
for r in "$r0" "$r100" "$rcfg"; do
    # Also brings each store's index up to date (the copied metas were
    # written behind the store's back), as any first run would.
    VESSEL_ROOT="$r" "$vessel" exec "$rootfs" /bin/true ||
        { echo "error: exec fails under $r" >&2; exit 1; }
done

# Interleaved (each round runs every command once): on a small VM the
# machine drifts more between hyperfine's back-to-back blocks than these
# ratios are wide.
python3 "$here/bench/interleave.py" "$runs" 5 "$work/h.json" \
    "help-0=VESSEL_ROOT=$r0 $vessel --help" \
    "help-100=VESSEL_ROOT=$r100 $vessel --help" \
    "version-0=VESSEL_ROOT=$r0 $vessel version" \
    "version-100=VESSEL_ROOT=$r100 $vessel version" \
    "exec-0=VESSEL_ROOT=$r0 $vessel exec $rootfs /bin/true" \
    "exec-100=VESSEL_ROOT=$r100 $vessel exec $rootfs /bin/true" \
    "exec-cfg=VESSEL_ROOT=$rcfg $vessel exec $rootfs /bin/true" \
    "list-0=VESSEL_ROOT=$r0 $vessel plugin list" \
    "list-10=VESSEL_ROOT=$r10 $vessel plugin list" \
    "list-100=VESSEL_ROOT=$r100 $vessel plugin list"

# One load per fresh process, the two kinds interleaved so load changes on
# the machine hit both alike.
store="$rcfg/usr/local/libexec/vessel/plugins"
lib=$(readlink -f "$store/names/bench.example.com/noop-config")/plugin.so
sha=$(sha256sum "$lib" | cut -d' ' -f1)
i=0
while [ "$i" -lt "$runs" ]; do
    "$loadhelper" bare "$lib" >>"$work/bare.txt"
    "$loadhelper" vessel "$lib" "$sha" "$store" bench.example.com/noop-config >>"$work/vessel.txt"
    i=$((i + 1))
done

python3 - "$work/h.json" "$work/bare.txt" "$work/vessel.txt" "$lib" "$runs" <<'PY'
import json, os, statistics, sys
h, bare, ves, lib, runs = sys.argv[1:]
r = {x["command"]: x["median"] * 1000 for x in json.load(open(h))["results"]}
b = statistics.median(int(x) for x in open(bare)) / 1000
v = statistics.median(int(x) for x in open(ves)) / 1000
print(f"load: {os.uname().nodename}, {os.cpu_count()} cpus, loadavg {' '.join(open('/proc/loadavg').read().split()[:3])}; {runs} runs, medians")
print(f"{'what':<58}{'ms':>8}{'base ms':>9}{'ratio':>8}  goal")
def row(label, k, base, goal):
    print(f"{label:<58}{r[k]:>8.2f}{r[base]:>9.2f}{r[k] / r[base]:>7.2f}x  {goal}")
row("vessel --help, 100 plugins vs 0", "help-100", "help-0", "<= 1.3x")
row("vessel version, 100 command-only plugins vs 0", "version-100", "version-0", "<= 1.1x")
row("vessel exec sandbox, 100 command-only plugins vs 0", "exec-100", "exec-0", "<= 1.1x")
d = r["exec-cfg"] - r["exec-0"]
print(f"{'vessel exec sandbox, one no-op EngineConfig plugin vs none':<58}{r['exec-cfg']:>8.2f}{r['exec-0']:>9.2f}{d:>+7.2f}ms <= +1 ms")
print(f"{'plugin load vs bare read+sha256+dlopen (%d KiB library)' % (os.path.getsize(lib) // 1024):<58}{v:>8.2f}{b:>9.2f}{v / b:>7.2f}x  <= 2x")
row("vessel plugin list, 10 plugins vs 0", "list-10", "list-0", "")
row("vessel plugin list, 100 plugins vs 0", "list-100", "list-0", "")
PY
