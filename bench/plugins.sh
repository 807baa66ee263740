#!/bin/sh
# What installed plugins cost the CLI: `vessel --help` and `vessel plugin list`
# with 0, 10 and 100 installed plugins (ratios to 0), and a plugin command
# (`vessel test-cmd`, which loads and verifies its library: sha256, ELF
# checks, memfd dlopen, layout checks) against the built-in `vessel version`.
# One hyperfine run; medians.
#
# The first plugin is the real cli-plugin, installed with `plugin install`;
# the others are copies of its meta under other names (each with its own
# command), which is exactly what `--help` and `plugin list` read.
#
# Usage: sudo bench/plugins.sh [RUNS]   (needs hyperfine, python3)
set -eu
runs=${1:-30}
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "error: run as root (plugin install is root-only)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "error: hyperfine is not installed" >&2; exit 1; }

(cd "$here" && cargo build --quiet --release -p vessel --bin vessel)
vessel="${CARGO_TARGET_DIR:-$here/target}/release/vessel"
work=$(mktemp -d /tmp/vessel-bench-plugins-XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

"$vessel" plugin compile --out "$work/cli.sif" "$here/examples/plugins/cli-plugin" >/dev/null 2>&1

make_root() { # N
    r="$work/root$1"
    mkdir -p "$r"
    if [ "$1" -gt 0 ]; then
        VESSEL_ROOT="$r" "$vessel" plugin install --yes --allow-unsigned "$work/cli.sif" >/dev/null 2>&1
        python3 - "$r/usr/local/libexec/vessel/plugins" "$1" <<'PY'
import hashlib, json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
src = next(f for f in os.listdir(d) if f.endswith(".meta"))
meta = json.load(open(os.path.join(d, src)))
for i in range(1, n):
    m = json.loads(json.dumps(meta))
    name = f"example.com/bench-{i:03}"
    m["manifest"]["name"] = name
    m["manifest"]["commands"][0]["name"] = f"bench-cmd-{i:03}"
    m["manifest"]["flags"] = []
    h = hashlib.sha256(name.encode()).hexdigest()
    json.dump(m, open(os.path.join(d, h + ".meta"), "w"))
PY
    fi
    echo "$r"
}
r0=$(make_root 0); r10=$(make_root 10); r100=$(make_root 100)
[ "$(VESSEL_ROOT=$r100 "$vessel" plugin list | wc -l)" = 101 ] || { echo "error: setup failed" >&2; exit 1; }

hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/h.json" \
    -n "help-0" "env VESSEL_ROOT=$r0 $vessel --help" \
    -n "help-10" "env VESSEL_ROOT=$r10 $vessel --help" \
    -n "help-100" "env VESSEL_ROOT=$r100 $vessel --help" \
    -n "list-0" "env VESSEL_ROOT=$r0 $vessel plugin list" \
    -n "list-10" "env VESSEL_ROOT=$r10 $vessel plugin list" \
    -n "list-100" "env VESSEL_ROOT=$r100 $vessel plugin list" \
    -n "version" "env VESSEL_ROOT=$r10 $vessel version" \
    -n "test-cmd" "env VESSEL_ROOT=$r10 $vessel test-cmd a b" \
    >/dev/null

python3 - "$work/h.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
print(f"{'command':<34}{'median ms':>10}{'ratio':>8}")
for what, base in (("help", "help-0"), ("list", "list-0")):
    for n in (0, 10, 100):
        k = f"{what}-{n}"
        label = ("vessel --help" if what == "help" else "vessel plugin list") + f" ({n} plugins)"
        print(f"{label:<34}{r[k]:>10.2f}{r[k] / r[base]:>7.2f}x")
print(f"{'vessel version (10 plugins)':<34}{r['version']:>10.2f}{1:>7.2f}x")
print(f"{'vessel test-cmd, cold (10 plugins)':<34}{r['test-cmd']:>10.2f}{r['test-cmd'] / r['version']:>7.2f}x")
PY
