#!/usr/bin/env bash
# Benchmark (not a test): imgtool against skopeo + umoci on a realistic image, measured
# in the same run with hyperfine, printing medians and ratios.
#  - the image: `debootstrap --variant=minbase bookworm` (cached in $BENCH_CACHE), pushed
#    to a local docker-registry on 127.0.0.1;
#  - cold: `imgtool pull` + `imgtool bundle` into an empty store vs `skopeo copy` +
#    `umoci unpack` into an empty layout;
#  - warm (image already stored): `imgtool bundle` vs `umoci unpack`;
#  - commit of a one-file change in a bundle: `imgtool commit` (overlay) vs `umoci repack`;
#  - push of the image to an empty registry: `imgtool push` vs `skopeo copy`;
#  - push of a 5-layer image (the Debian base and four 16 MiB layers of incompressible
#    data, made with `imgtool commit`) to an empty registry, the same two ways.
# usage: hack/bench-image.sh [RUNS]   (default 5 for the slow cases, 20 for the fast ones)
#        BENCH_ONLY=push hack/bench-image.sh   (only the push cases)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-image: run as root" >&2; exit 1; }
runs=${1:-5}
fast_runs=$((runs * 4))
cache=${BENCH_CACHE:-/var/cache/imgtool-bench}

bash hack/install-deps.sh >/dev/null
command -v debootstrap >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
# What users install (hack/install.sh), into target/install.
PREFIX="$PWD/target/install" bash hack/install.sh >/dev/null
IMGTOOL="$PWD/target/install/bin/imgtool"
export IMGTOOL

# The Debian minbase root filesystem, made once (needs Debian's mirror).
mkdir -p "$cache"
if [ ! -f "$cache/debian-minbase.tar" ]; then
  rm -rf "$cache/rootfs.tmp"
  debootstrap --variant=minbase bookworm "$cache/rootfs.tmp" http://deb.debian.org/debian >/dev/null
  # As Debian's published images: no package lists or downloaded packages.
  rm -rf "$cache"/rootfs.tmp/var/lib/apt/lists/* "$cache"/rootfs.tmp/var/cache/apt/archives/*.deb
  tar -C "$cache/rootfs.tmp" --numeric-owner --xattrs -cf "$cache/debian-minbase.tar.tmp" .
  mv "$cache/debian-minbase.tar.tmp" "$cache/debian-minbase.tar"
  rm -rf "$cache/rootfs.tmp"
fi

work=$(mktemp -d /tmp/bench-image.XXXXXX)
export work
cleanup() {
  for b in "$work"/b-* "$work"/ext4/b-*; do [ -f "$b/imgtool.json" ] && { "$IMGTOOL" unbundle "$b" >/dev/null 2>&1 || echo "bench-image: unbundle $b failed" >&2; }; done
  for r in "$work"/registry*; do [ -f "$r/pid" ] && kill "$(cat "$r/pid")" 2>/dev/null; done
  grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

registry=$(hack/start-registry.sh "$work/registry")
export registry
"$IMGTOOL" --store "$work/src" import -q "$cache/debian-minbase.tar" localhost/debian:minbase -c 'CMD ["bash"]' >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$work/src:localhost/debian:minbase" "docker://$registry/debian:minbase"
size=$(du -sm "$work/src/blobs" | cut -f1)
files=$(tar -tf "$cache/debian-minbase.tar" | wc -l)
echo "image: debian minbase bookworm, ${size} MB compressed, $files entries, registry $registry"

only=${BENCH_ONLY:-all}
want() { [ "$only" = all ] || [ "$only" = "$1" ]; }

median() { jq -r ".results[] | select(.command == \"$2\") | .median" "$1"; }
ms() { awk -v s="$1" 'BEGIN { printf "%.1f ms", s * 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", b / a }'; }

# Every run writes into new directories and nothing is deleted until the end. This VM's
# root filesystem is ext4 without a journal, where the inode allocator skips, one by one,
# the free inodes released in the last 60 s (360 s while their inode-table block is dirty;
# ext4's recently_deleted() check, made only without a journal): after an rm -rf of a
# few thousand files, every file created nearby pays a scan of them, which made creating
# this image's files 10-20x slower, for both tools, than on a filesystem that had not
# just deleted a tree. `next.sh COUNTER` hands out run numbers; the cold case is also
# measured on a fresh, loop-mounted ext4 with a journal (mkfs.ext4 defaults, as a usual
# /var/lib), where that check does not exist (see docs/performance.md).
cat > "$work/next.sh" <<'SH'
n=$(( $(cat "$work/run-$1" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$work/run-$1"; sync
SH

# Cold: an empty store / layout each run, under the directory $1.
cat > "$work/ours-cold.sh" <<'SH'
set -e
n=$(cat "$work/run-ours-cold-$2")
"$IMGTOOL" --store "$1/cold-store-$n" pull -q "$registry/debian:minbase" >/dev/null
"$IMGTOOL" --store "$1/cold-store-$n" bundle -q "$registry/debian:minbase" "$1/b-cold-$n"
SH
cat > "$work/peer-cold.sh" <<'SH'
set -e
n=$(cat "$work/run-peer-cold-$2")
skopeo copy -q --src-tls-verify=false "docker://$registry/debian:minbase" "oci:$1/cold-layout-$n:debian"
umoci unpack --image "$1/cold-layout-$n:debian" "$1/peer-cold-bundle-$n" >/dev/null
SH
cold() { # cold DIR NAME
  hyperfine --runs "$runs" --export-json "$work/cold-$2.json" \
    -n ours --prepare "bash $work/next.sh ours-cold-$2" "bash $work/ours-cold.sh $1 $2" \
    -n peer --prepare "bash $work/next.sh peer-cold-$2" "bash $work/peer-cold.sh $1 $2" >/dev/null
}
if want pull; then
  cold "$work" rootfs
  # Allocated up front and initialised by mkfs, as a settled /var/lib (hack/bench-pull.sh).
  fallocate -l 16G "$work/ext4.img"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work/ext4.img"
  mkdir -p "$work/ext4"
  mount -o loop "$work/ext4.img" "$work/ext4"
  cold "$work/ext4" ext4
  for b in "$work"/ext4/b-*; do [ -f "$b/imgtool.json" ] && "$IMGTOOL" unbundle "$b" >/dev/null; done
  umount "$work/ext4"
  rm -f "$work/ext4.img"
fi

# Warm: the image is already stored.
"$IMGTOOL" --store "$work/store" pull -q "$registry/debian:minbase" >/dev/null
skopeo copy -q --src-tls-verify=false "docker://$registry/debian:minbase" "oci:$work/layout:debian"
"$IMGTOOL" --store "$work/store" bundle -q "$registry/debian:minbase" "$work/b-first"
if want pull; then
  hyperfine --runs "$fast_runs" --export-json "$work/warm.json" \
    -n ours --prepare "bash $work/next.sh ours-warm" \
      "read n < $work/run-ours-warm && $IMGTOOL --store $work/store bundle -q $registry/debian:minbase $work/b-warm-\$n" \
    -n peer --prepare "bash $work/next.sh peer-warm" \
      "read n < $work/run-peer-warm && umoci unpack --image $work/layout:debian $work/peer-warm-\$n" >/dev/null

  # Commit of a one-file change.
  "$IMGTOOL" --store "$work/store" bundle -q "$registry/debian:minbase" "$work/b-commit"
  umoci unpack --image "$work/layout:debian" "$work/umoci-commit" >/dev/null
  hyperfine --runs "$fast_runs" --export-json "$work/commit.json" \
    -n ours --prepare "head -c 4096 /dev/urandom > $work/b-commit/rootfs/etc/changed" \
      "$IMGTOOL --store $work/store commit $work/b-commit localhost/debian:changed" \
    -n peer --prepare "head -c 4096 /dev/urandom > $work/umoci-commit/rootfs/etc/changed" \
      "umoci repack --image $work/layout:changed $work/umoci-commit" >/dev/null
fi

# Push to an empty registry each run.
cat > "$work/fresh-registry.sh" <<'SH'
[ -f "$work/registry-push/pid" ] && kill "$(cat "$work/registry-push/pid")" 2>/dev/null && sleep 0.2
rm -rf "$work/registry-push"
hack/start-registry.sh "$work/registry-push" > "$work/push-host"
SH
# The 5-layer image: four commits of 16 MiB of random bytes on top of the base.
prev="$registry/debian:minbase"
for i in 1 2 3 4; do
  "$IMGTOOL" --store "$work/store" bundle -q "$prev" "$work/b-five-$i"
  head -c 16M /dev/urandom > "$work/b-five-$i/rootfs/layer-$i.bin"
  "$IMGTOOL" --store "$work/store" commit -q "$work/b-five-$i" "localhost/five:$i" >/dev/null
  prev="localhost/five:$i"
done
skopeo copy -q "oci:$work/store:localhost/five:4" "oci:$work/layout:five"

push_case() { # push_case NAME OURS_REF PEER_REF
  hyperfine --runs "$runs" --export-json "$work/push-$1.json" \
    -n ours --prepare "bash $work/fresh-registry.sh" \
      "$IMGTOOL --store $work/store push -q $2 \$(cat $work/push-host)/$1:1" \
    -n peer --prepare "bash $work/fresh-registry.sh" \
      "skopeo copy -q --dest-tls-verify=false oci:$work/layout:$3 docker://\$(cat $work/push-host)/$1:1" >/dev/null
}
push_case debian "$registry/debian:minbase" debian
push_case five localhost/five:4 five

printf '\n%-44s %12s %12s %10s\n' "" "imgtool" "peer" "speed-up"
row() {
  local what=$1 file=$2
  local a b
  a=$(median "$file" ours) b=$(median "$file" peer)
  printf '%-44s %12s %12s %10s\n' "$what" "$(ms "$a")" "$(ms "$b")" "$(ratio "$a" "$b")"
}
if want pull; then
  row "cold pull+bundle (vs skopeo copy+umoci unpack)" "$work/cold-rootfs.json"
  row "  the same on a fresh ext4 with a journal" "$work/cold-ext4.json"
  row "bundle of a stored image (vs umoci unpack)" "$work/warm.json"
  row "commit of a one-file change (vs umoci repack)" "$work/commit.json"
fi
row "push to an empty registry (vs skopeo copy)" "$work/push-debian.json"
row "  the same, 5 layers (base + 4 x 16 MiB)" "$work/push-five.json"
echo "(medians; speed-up = peer / imgtool; targets: cold >= 8x, stored bundle <= 50 ms, commit <= 100 ms and >= 20x, push >= 1.0x)"
