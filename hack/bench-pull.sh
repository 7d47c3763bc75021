#!/usr/bin/env bash
# Benchmark (not a test): a cold pull of an image into an empty store, ready to run, by
# imgtool (`pull` + `bundle`), skopeo + umoci (`skopeo copy` + `umoci unpack`) and podman
# (`podman pull` into its own --root with the overlay driver, which unpacks every layer),
# interleaved (each round runs the three once, in a shuffled order, so a load change hits
# all alike), on two images served by a local docker-registry on 127.0.0.1:
#  - debian: `debootstrap --variant=minbase bookworm` as one layer (49 MB compressed,
#    6,675 entries), as Debian publishes it;
#  - layered: that layer plus four layers of 1,500 small files each (1-10 KiB of seeded
#    random bytes, ~8 MB compressed per layer; hack/make-layer-files.py), added with
#    `umoci insert`, as an application image is built on a distribution base.
# Each run writes into new directories and nothing is deleted until an image's runs are
# over: on this VM's journal-less ext4 a file created soon after many deletions pays a
# scan of the recently freed inodes (docs/performance.md, "How the cold case is
# measured"). So every image is measured twice: on the root file system as it is, and on
# a fresh loop-mounted ext4 made by mkfs.ext4 with its defaults (journaled, as a usual
# /var/lib), as settled as a long-lived one: its image file allocated up front (a sparse
# one makes every block the inner file system writes an allocation on the root one, in
# whatever state that is) and its inode tables written by mkfs (the default leaves them
# to a kernel thread that zeroes them in the background during the first runs). Every
# run's time is printed in order, so a drift across runs shows. Reported per case: median, fastest and slowest wall time, median CPU time
# (user + system of the whole process tree), and the peers' medians over imgtool's.
#
# The imgtool measured is the one users install: `-i BINARY`, else `imgtool` on PATH
# (hack/install.sh). The images are cached in $BENCH_CACHE (default
# /var/cache/imgtool-bench; the Debian one needs Debian's mirror once).
# usage: hack/bench-pull.sh [-i BINARY] [--only debian|layered] [RUNS]   (default 5 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-pull: run as root" >&2; exit 1; }
imgtool="" runs=5 only="debian layered"
while [ $# -gt 0 ]; do
  case "$1" in
    -i) imgtool=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) runs=$1; shift ;;
  esac
done
if [ -z "$imgtool" ]; then
  imgtool=$(command -v imgtool) || {
    echo "bench-pull: no imgtool on PATH: install it (hack/install.sh) or pass -i BINARY" >&2
    exit 1
  }
fi
IMGTOOL=$(realpath "$imgtool")
cache=${BENCH_CACHE:-/var/cache/imgtool-bench}

bash hack/install-deps.sh >/dev/null
for tool in skopeo umoci podman docker-registry mkfs.ext4; do
  command -v "$tool" >/dev/null || { echo "bench-pull: $tool missing (hack/install-deps.sh)" >&2; exit 1; }
done

# The Debian minbase root file system, made once (needs Debian's mirror).
mkdir -p "$cache"
if [ ! -f "$cache/debian-minbase.tar" ]; then
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  rm -rf "$cache/rootfs.tmp"
  debootstrap --variant=minbase bookworm "$cache/rootfs.tmp" http://deb.debian.org/debian >/dev/null
  # As Debian's published images: no package lists or downloaded packages.
  rm -rf "$cache"/rootfs.tmp/var/lib/apt/lists/* "$cache"/rootfs.tmp/var/cache/apt/archives/*.deb
  tar -C "$cache/rootfs.tmp" --numeric-owner --xattrs -cf "$cache/debian-minbase.tar.tmp" .
  mv "$cache/debian-minbase.tar.tmp" "$cache/debian-minbase.tar"
  rm -rf "$cache/rootfs.tmp"
fi

work=$(mktemp -d /tmp/bench-pull.XXXXXX)
# podman refuses a --runroot longer than 50 characters: its runroots live here.
podrun=$(mktemp -d /tmp/pr.XXXXXX)
export work IMGTOOL podrun
cleanup() {
  for b in "$work"/*/b-* "$work"/ext4-*/*/b-*; do
    [ -f "$b/imgtool.json" ] && { "$IMGTOOL" unbundle "$b" >/dev/null 2>&1 || echo "bench-pull: unbundle $b failed" >&2; }
  done
  for r in "$work"/registry; do [ -f "$r/pid" ] && kill "$(cat "$r/pid")" 2>/dev/null; done
  grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work" "$podrun"
}
trap cleanup EXIT

# Both images, made offline and pushed to a local registry.
registry=$(hack/start-registry.sh "$work/registry")
export registry
"$IMGTOOL" --store "$work/src" import -q "$cache/debian-minbase.tar" localhost/debian:minbase \
  -c 'CMD ["bash"]' >/dev/null
skopeo copy -q "oci:$work/src:localhost/debian:minbase" "oci:$work/layout:layered"
for k in 1 2 3 4; do
  python3 hack/make-layer-files.py "$work/files-$k" "$k"
  umoci insert --image "$work/layout:layered" "$work/files-$k" "/opt/app$k" >/dev/null
done
rm -rf "$work"/files-*
skopeo copy -q --dest-tls-verify=false "oci:$work/src:localhost/debian:minbase" "docker://$registry/debian:minbase"
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:layered" "docker://$registry/debian:layered"
rm -rf "$work/src" "$work/layout"
declare -A ref=([debian]=debian:minbase [layered]=debian:layered)

# One run of one tool: DIR N IMAGE; prints "wall user sys".
cat > "$work/imgtool.sh" <<'SH'
"$IMGTOOL" --store "$1/store-$2" pull -q "$registry/$3" >/dev/null
"$IMGTOOL" --store "$1/store-$2" bundle "$registry/$3" "$1/b-$2" >/dev/null
SH
cat > "$work/skopeo-umoci.sh" <<'SH'
skopeo copy -q --src-tls-verify=false "docker://$registry/$3" "oci:$1/layout-$2:img"
umoci unpack --image "$1/layout-$2:img" "$1/bundle-$2" >/dev/null
SH
cat > "$work/podman.sh" <<'SH'
podman --root "$1/podman-$2" --runroot "$(mktemp -d "$podrun/XXXXXX")" --storage-driver overlay \
  --events-backend file pull -q --tls-verify=false "docker://$registry/$3" >/dev/null
SH
tools=(imgtool skopeo-umoci podman)

# Interleaved rounds of the three tools for IMAGE under DIR, results in $work/times-CASE.
measure() { # measure CASE DIR IMAGE
  local case=$1 dir=$2 image=$3 i tool
  mkdir -p "$dir"
  for i in $(seq "$runs"); do
    for tool in $(printf '%s\n' "${tools[@]}" | shuf --random-source=<(yes "$i")); do
      sync
      /usr/bin/time -f "$tool %e %U %S" -a -o "$work/times-$case" \
        bash -e "$work/$tool.sh" "$dir" "$i" "$image" \
        || { echo "bench-pull: $tool failed on $image ($case, run $i)" >&2; exit 1; }
    done
  done
}

echo "imgtool: $IMGTOOL; $(skopeo --version); umoci $(umoci --version | awk '{print $3}'); $(podman --version)"
echo "$(date -Is) $(uptime | sed 's/.*load/load/'), $(nproc) CPUs"
for image in $only; do
  measure "$image-rootfs" "$work/$image" "${ref[$image]}"
  # A fresh journaled ext4 for this image's runs, removed after them.
  fallocate -l 12G "$work/ext4-$image.img"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work/ext4-$image.img"
  mkdir -p "$work/ext4-$image"
  mount -o loop "$work/ext4-$image.img" "$work/ext4-$image"
  measure "$image-ext4" "$work/ext4-$image/runs" "${ref[$image]}"
  for b in "$work/ext4-$image"/runs/b-*; do [ -f "$b/imgtool.json" ] && "$IMGTOOL" unbundle "$b" >/dev/null; done
  umount "$work/ext4-$image"
  rm -f "$work/ext4-$image.img"
done
echo "$(date -Is) $(uptime | sed 's/.*load/load/')"

echo
echo "cold pull, ready to run: medians of $runs interleaved runs (seconds; CPU = user + system)"
printf '%-16s %-13s %8s %8s %8s %8s %12s\n' case tool median fastest slowest CPU "vs imgtool"
echo
echo "every run in order (wall seconds), for the spread:"
for image in $only; do
  for fs in rootfs ext4; do
    for tool in "${tools[@]}"; do
      printf '%-16s %-13s %s\n' "$image-$fs" "$tool" "$(awk -v t="$tool" '$1 == t { printf "%s ", $2 }' "$work/times-$image-$fs")"
    done
  done
done
echo
for image in $only; do
  for fs in rootfs ext4; do
    python3 - "$work/times-$image-$fs" "$image-$fs" "${tools[@]}" <<'PY'
import statistics, sys
path, case, tools = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = {t: [] for t in tools}
for line in open(path):
    f = line.split()
    if len(f) == 4 and f[0] in rows:
        rows[f[0]].append((float(f[1]), float(f[2]) + float(f[3])))
base = statistics.median(w for w, _ in rows[tools[0]])
for t in tools:
    walls = [w for w, _ in rows[t]]
    med = statistics.median(walls)
    cpu = statistics.median(c for _, c in rows[t])
    print(f"{case:<16} {t:<13} {med:8.2f} {min(walls):8.2f} {max(walls):8.2f} {cpu:8.2f} {med / base:11.2f}x")
PY
  done
done
