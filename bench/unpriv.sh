#!/bin/sh
# Unprivileged SIF runs against root runs of the same image (issue 13,
# item 1): `vessel exec IMAGE /bin/true` as root (kernel squashfs on a loop
# device) and as nobody through FUSE (squashfuse_ll, no extraction) and
# through the per-user cache of extracted trees (warm: the tree was built
# once before timing; nothing is extracted while timing). Two images: a
# generated ~200 MB SIF (10,000 files of random, incompressible data plus
# busybox) and a ~1 MB busybox SIF. Goals: big ≤ 3× root, busybox ≤ 2× root.
#
# Everything runs in a private mount namespace where a 0666 fuse node is
# bound over /dev/fuse, so the FUSE rows work on machines whose /dev/fuse is
# 0600 (Debian's is 0666). The six runs are interleaved (bench/interleave.py:
# each round runs every one once, rotated), since back-to-back blocks drift
# on a small VM by more than these ratios' margins; medians; ratios to the
# root row of the same image.
#
# Usage: sudo bench/unpriv.sh [RUNS]   (needs python3, busybox,
#                                       squashfs-tools, squashfuse, setpriv)
set -eu
runs=${1:-30}
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 1; }
for t in busybox python3 squashfuse_ll unshare setpriv; do
    command -v "$t" >/dev/null || { echo "error: $t is not installed" >&2; exit 1; }
done

(cd "$here" && cargo build --quiet --release -p vessel --bin vessel)
vessel="${CARGO_TARGET_DIR:-$here/target}/release/vessel"

work=$(mktemp -d /tmp/vessel-bench-unpriv-XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
chmod 755 "$work"

make_rootfs() { # DIR
    mkdir -p "$1/bin" "$1/proc" "$1/sys" "$1/dev" "$1/tmp" "$1/root" "$1/etc" "$1/home"
    cp "$(command -v busybox)" "$1/bin/busybox"
    for a in $(busybox --list); do
        [ -e "$1/bin/$a" ] || ln -s busybox "$1/bin/$a"
    done
}
make_rootfs "$work/small"
make_rootfs "$work/big"
python3 - "$work/big/data" <<'EOF'
import os, sys
top = sys.argv[1]
for d in range(20):
    os.makedirs(f"{top}/d{d}")
    for f in range(500):
        with open(f"{top}/d{d}/f{f}", "wb") as out:
            out.write(os.urandom(20 * 1024))
EOF
"$vessel" build "$work/small.sif" "$work/small" >/dev/null
"$vessel" build "$work/big.sif" "$work/big" >/dev/null
rm -rf "$work/small" "$work/big"
chmod 644 "$work/small.sif" "$work/big.sif"

# Roots: defaults (root: loop mount; nobody: fuse here), and one that forces
# the cache path.
mkdir -p "$work/root-default" "$work/root-cache/etc/vessel" "$work/tmp" "$work/xdg" "$work/dev"
printf 'image_driver = "extract"\n' >"$work/root-cache/etc/vessel/vessel.toml"
chmod 1777 "$work/tmp"
chown 65534:65534 "$work/xdg"

cat >"$work/as-nobody" <<EOF
#!/bin/sh
exec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/nonexistent \
    XDG_CACHE_HOME=$work/xdg TMPDIR=$work/tmp "\$@"
EOF
chmod 755 "$work/as-nobody"

size() { du -m "$1" | cut -f1; }
echo "images: big.sif $(size "$work/big.sif") MB, small.sif (busybox) $(size "$work/small.sif") MB"

# The timed part, inside a private mount namespace with a usable fuse node.
cat >"$work/timed.sh" <<EOF
#!/bin/sh
set -eu
mknod "$work/dev/fuse" c 10 229
chmod 666 "$work/dev/fuse"
mount --bind "$work/dev/fuse" /dev/fuse
d="VESSEL_ROOT=$work/root-default TMPDIR=$work/tmp"
c="VESSEL_ROOT=$work/root-cache"
# Warm the cache (one build per image) and check each path runs.
for img in big small; do
    $work/as-nobody env \$c $vessel exec $work/\$img.sif /bin/true
    $work/as-nobody env \$d $vessel -v exec $work/\$img.sif /bin/true 2>&1 | grep -q "fuse mount" \
        || { echo "error: the fuse path did not run" >&2; exit 1; }
done
python3 $here/bench/interleave.py $runs 3 $work/unpriv.json \
    "root big=\$d $vessel exec $work/big.sif /bin/true" \
    "nobody fuse big=$work/as-nobody env \$d $vessel exec $work/big.sif /bin/true" \
    "nobody cache big=$work/as-nobody env \$c $vessel exec $work/big.sif /bin/true" \
    "root small=\$d $vessel exec $work/small.sif /bin/true" \
    "nobody fuse small=$work/as-nobody env \$d $vessel exec $work/small.sif /bin/true" \
    "nobody cache small=$work/as-nobody env \$c $vessel exec $work/small.sif /bin/true"
EOF
chmod 755 "$work/timed.sh"
unshare -m --propagation private "$work/timed.sh"

python3 - "$work/unpriv.json" <<'EOF'
import json, sys
rows = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
goals = {"big": 3.0, "small": 2.0}
print(f"{'run':<22}{'median':>10}{'vs root':>10}{'goal':>8}")
for img in ("big", "small"):
    base = rows[f"root {img}"]
    for who in ("root", "nobody fuse", "nobody cache"):
        name = f"{who} {img}"
        ratio = rows[name] / base
        goal = "" if who == "root" else f"≤{goals[img]:.0f}×"
        print(f"{name:<22}{rows[name] * 1000:>8.1f}ms{ratio:>9.2f}×{goal:>8}")
EOF
