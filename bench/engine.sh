#!/bin/sh
# Container start latency: `vessel exec IMAGE /bin/true` on a sandbox dir and
# on a SIF image, as root, against `runc run` on an OCI bundle of the same
# busybox rootfs and against bubblewrap; and the sandbox exec again with 10
# installed plugins, one of them EngineConfig (config-plugin, which reads its
# config file and adds a bind and an env var; the 9 others only add commands,
# so the exec never opens them); and with gpu-plugin alone installed, the
# sandbox exec without --gpu and with it; and the SIF exec's work done by
# hand (loop mount of the squashfs partition + bwrap + umount). Prints one
# table of medians (from one hyperfine run), each one's ratio to bwrap and
# to the plain `vessel exec sandbox` (no plugins), and the SIF exec's ratio
# to the same by hand (again from interleaved runs of just those two).
#
# Usage: sudo bench/engine.sh [RUNS]     (needs busybox-static, squashfs-tools,
#                                          runc, bubblewrap, hyperfine, siftool)
# The SIF row pays for a fresh squashfs mount per run: its page cache starts
# cold, so the command binary is decompressed again every time.
# VESSEL_BENCH_EXTRA="label|command" adds one more row (e.g. the same exec
# with plugins installed under another VESSEL_ROOT).
set -eu

runs=${1:-50}
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 1; }
for t in busybox mksquashfs runc bwrap hyperfine siftool python3; do
    command -v "$t" >/dev/null || { echo "error: $t is not installed" >&2; exit 1; }
done

(cd "$here" && cargo build --quiet --release -p vessel --bin vessel)
vessel="${CARGO_TARGET_DIR:-$here/target}/release/vessel"

work=$(mktemp -d /tmp/vessel-bench-XXXXXX)
# Installed plugin libraries are immutable (chattr +i): cleared first.
trap 'chattr -R -i "$work" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM

# One busybox rootfs for everyone.
rootfs="$work/bundle/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp" "$rootfs/root" "$rootfs/etc"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in $(busybox --list); do
    [ -e "$rootfs/bin/$a" ] || ln -s busybox "$rootfs/bin/$a"
done
# config-plugin's bind destination.
mkdir -p "$rootfs/config-plugin"
: >"$rootfs/config-plugin/hostname"
"$vessel" build "$work/image.sif" "$rootfs" >/dev/null

# A VESSEL_ROOT with 10 plugins: 9 command-only ones and config-plugin.
# Plugins compile inside the source tree (target/bench-plugins).
plugroot="$work/vroot-plugins"
plugsrc="$here/target/bench-plugins"
mkdir -p "$plugroot/etc/vessel" "$plugsrc"
printf 'plugin_signatures = "off"\n' >"$plugroot/etc/vessel/vessel.toml"
compile() { # DIR OUT
    "$vessel" plugin compile --out "$2" "$1" >"$work/compile.log" 2>&1 ||
        { cat "$work/compile.log" >&2; echo "error: plugin compile $1 failed" >&2; exit 1; }
}
for i in 1 2 3 4 5 6 7 8 9; do
    d="$plugsrc/src-cmd-$i"
    rm -rf "$d"
    "$vessel" plugin create "$d" "bench.example.com/cmd-$i" >/dev/null
    cat >"$d/src/lib.rs" <<EOF
use vessel_plugin_api::{Command, Plugin};
pub fn build() -> Plugin {
    Plugin::new("bench.example.com/cmd-$i")
        .version("0.1.0")
        .command(Command::new("bench-cmd-$i").about("benchmark filler"), |_| Ok(0))
}
vessel_plugin_api::export_plugin!(build);
EOF
    compile "$d" "$plugsrc/cmd-$i.sif"
    VESSEL_ROOT="$plugroot" "$vessel" plugin install --yes "$plugsrc/cmd-$i.sif" >/dev/null
done
compile "$here/examples/plugins/config-plugin" "$plugsrc/config-plugin.sif"
VESSEL_ROOT="$plugroot" "$vessel" plugin install --yes "$plugsrc/config-plugin.sif" >/dev/null
echo "bench" >"$work/hostname"
printf 'bind = %s:/config-plugin/hostname:ro\nenv = CONFIG_PLUGIN=1\n' "$work/hostname" \
    >"$plugroot/etc/vessel/plugins/example.com/config-plugin/config-plugin.conf"
[ "$(VESSEL_ROOT="$plugroot" "$vessel" exec "$rootfs" sh -c 'echo $CONFIG_PLUGIN; cat /config-plugin/hostname')" = "1
bench" ] || { echo "error: config-plugin is not applied in the bench root" >&2; exit 1; }

# A VESSEL_ROOT with gpu-plugin only: its EngineConfig callback runs on
# every exec; with --gpu it reads gpu.toml, binds a libs dir at
# /usr/local/gpu (absent from the image: an underlay) and adds a device.
gpuroot="$work/vroot-gpu"
mkdir -p "$gpuroot/etc/vessel" "$work/gpu-libs"
printf 'plugin_signatures = "off"\n' >"$gpuroot/etc/vessel/vessel.toml"
echo lib >"$work/gpu-libs/libgpu.so"
compile "$here/examples/plugins/gpu-plugin" "$plugsrc/gpu-plugin.sif"
VESSEL_ROOT="$gpuroot" "$vessel" plugin install --yes "$plugsrc/gpu-plugin.sif" >/dev/null
printf 'libs = "%s"\ndevices = ["/dev/null"]\n' "$work/gpu-libs" \
    >"$gpuroot/etc/vessel/plugins/example.com/gpu-plugin/gpu.toml"
[ "$(VESSEL_ROOT="$gpuroot" "$vessel" exec --gpu "$rootfs" sh -c 'cat /usr/local/gpu/libgpu.so; echo $LD_LIBRARY_PATH')" = "lib
/usr/local/gpu" ] || { echo "error: gpu-plugin is not applied in the bench root" >&2; exit 1; }

# OCI bundle over the same rootfs: no terminal, run /bin/true.
(cd "$work/bundle" && runc spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/^\(\s*\)"sh"$/\1"\/bin\/true"/' "$work/bundle/config.json"
grep -q '"/bin/true"' "$work/bundle/config.json" || { echo "error: could not edit the runc spec" >&2; exit 1; }

# The SIF exec's work done by hand: loop-mount the image's squashfs
# partition at its offset, run bwrap on it, unmount (issue 13: vessel's
# SIF exec should cost no more).
offset=$(siftool list "$work/image.sif" | awk -F'|' '/FS/ { split($4, a, "-"); print a[1] + 0; exit }')
[ -n "$offset" ] || { echo "error: no squashfs partition found in image.sif" >&2; exit 1; }
mkdir -p "$work/mnt"
byhand="mount -t squashfs -o loop,ro,offset=$offset $work/image.sif $work/mnt && bwrap --bind $work/mnt / --proc /proc --dev /dev /bin/true; umount $work/mnt"

export VESSEL_ROOT="$work/vroot"
mkdir -p "$VESSEL_ROOT"
set -- \
    "vessel exec sandbox|$vessel exec $rootfs /bin/true" \
    "vessel exec sif|$vessel exec $work/image.sif /bin/true" \
    "runc run|runc run --bundle $work/bundle vessel-bench-\$\$" \
    "bwrap|bwrap --bind $rootfs / --proc /proc --dev /dev /bin/true" \
    "sif by hand (loop+bwrap+umount)|$byhand" \
    "vessel exec sandbox +10 plugins|env VESSEL_ROOT=$plugroot $vessel exec $rootfs /bin/true" \
    "vessel exec sandbox +gpu-plugin|env VESSEL_ROOT=$gpuroot $vessel exec $rootfs /bin/true" \
    "vessel exec sandbox +gpu-plugin --gpu|env VESSEL_ROOT=$gpuroot $vessel exec --gpu $rootfs /bin/true"
if [ -n "${VESSEL_BENCH_EXTRA:-}" ]; then
    set -- "$@" "$VESSEL_BENCH_EXTRA"
fi

# Check each command works before timing it.
for row in "$@"; do
    sh -c "${row#*|}" >/dev/null 2>&1 || { echo "error: ${row%%|*} does not run: ${row#*|}" >&2; exit 1; }
done

args=""
for row in "$@"; do
    args="$args --command-name '${row%%|*}' '${row#*|}'"
done
eval hyperfine --style none --warmup 3 --runs "$runs" --export-csv "$work/out.csv" $args \
    >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log" >&2; exit 1; }

# CSV: command,mean,stddev,median,user,system,min,max (seconds)
# "x vessel": the ratio to the same exec without plugins.
awk -F, -v runs="$runs" '
    NR > 1 { name[NR] = $1; med[NR] = $4; n = NR
             if ($1 == "bwrap") base = $4
             if ($1 == "vessel exec sandbox") plain = $4
             if ($1 == "vessel exec sif") sif = $4
             if ($1 ~ /^sif by hand/) hand = $4 }
    END {
        printf "%-38s %12s %12s %12s\n", "command (" runs " runs)", "median ms", "x bwrap", "x vessel"
        for (i = 2; i <= n; i++)
            printf "%-38s %12.2f %12.2f %12.2f\n", name[i], med[i] * 1000, med[i] / base, med[i] / plain
        printf "\nvessel exec sif vs the same by hand (hyperfine, back to back): %.2fx\n", sif / hand
    }' "$work/out.csv"

# The goal's row again, the two interleaved (bench/interleave.py, both
# through /bin/sh -c as hyperfine runs them): back-to-back blocks drift
# more on a small VM than this ratio is wide.
python3 "$here/bench/interleave.py" "$runs" 3 "$work/sif.json" \
    "sif=/bin/sh -c '$vessel exec $work/image.sif /bin/true'" \
    "hand=/bin/sh -c '$byhand'"
python3 - "$work/sif.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
print(f"vessel exec sif vs the same by hand (interleaved): {r['sif']:.2f} vs {r['hand']:.2f} ms, "
      f"{r['sif'] / r['hand']:.2f}x (goal <= 1x)")
PY
