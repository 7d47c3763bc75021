#!/usr/bin/env bash
# Benchmark (not a test): this runtime vs crun and runc measured in the same run with
# hyperfine: `run` of /bin/true in a busybox bundle (median, ratio to crun, peak RSS),
# `exec` of /bin/true in a running container, and `ctr run --rm` through containerd's runc
# v2 shim with --runc-binary, and RunPodSandbox + CreateContainer + StartContainer through
# containerd's CRI plugin with one runtime handler per runtime (spec-tests' CRI harness, as
# kubelet drives it: spec-tests/examples/cri-latency.rs). crun 1.8 refuses this host's cgroup hybrid mode while cgroup2 lists a
# controller, so every runtime is measured inside `unshare -m` with /sys/fs/cgroup/unified
# unmounted there (the host is unchanged).
# hyperfine runs one command's runs back to back, so on a shared machine a load change
# can favour one runtime; `run` is therefore also timed interleaved (ours, crun, runc,
# ours, ...) with wall-clock and CPU-time medians, which contention hits evenly.
# The runtimes' state roots (--root) are on a tmpfs, as their defaults /run/runtime,
# /run/crun and /run/runc are on any host where /run is a tmpfs (systemd's, Debian's).
# This VM has no systemd and its /run is on a journal-less ext4, where every file created
# soon after others were deleted pays a scan of the recently freed inodes; each `run`
# creates and deletes a few state files (ours six, crun three), so a loop of runs
# measured that filesystem's allocator more than the runtimes (docs/performance.md).
# usage: hack/bench-runtime.sh [RUNS]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-runtime: run as root" >&2; exit 1; }
runs=${1:-100}

bash hack/install-deps.sh >/dev/null
# What users install: hack/install.sh's static, non-PIE release build, installed into
# target/install; crun and runc are Debian's.
PREFIX="$PWD/target/install" bash hack/install.sh >/dev/null
ours="$PWD/target/install/bin/runtime"
cargo build --release -p spec-tests --example cri-latency -q
cri_latency="$PWD/target/release/examples/cri-latency"

work=$(mktemp -d /tmp/bench-runtime.XXXXXX)
trap 'rm -rf "$work"' EXIT
hack/make-busybox-bundle.sh "$work/bundle" "$ours" -- /bin/true >/dev/null
hack/make-busybox-bundle.sh "$work/sleeper" "$ours" -- sleep 3600 >/dev/null
# A busybox image for containerd, made offline.
mkdir -p "$work/img-rootfs/bin"
cp /bin/busybox "$work/img-rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/img-rootfs/bin/$a"; done
umoci init --layout "$work/img" && umoci new --image "$work/img:latest"
umoci insert --rootless --image "$work/img:latest" "$work/img-rootfs" / >/dev/null
skopeo copy -q "oci:$work/img:latest" "docker-archive:$work/bb.tar:localhost/bench-busybox:latest"

export ours work runs cri_latency
unshare -m bash -euo pipefail -c '
  mount --make-rprivate /
  mountpoint -q /sys/fs/cgroup/unified && umount /sys/fs/cgroup/unified
  mkdir -p "$work/state"
  mount -t tmpfs -o mode=0700 state "$work/state"
  declare -A bin=([ours]="$ours" [crun]="$(command -v crun)" [runc]="$(command -v runc)")
  cmds=()
  for name in ours crun runc; do
    mkdir -p "$work/state/root-$name"
    cmds+=(-n "$name" "${bin[$name]} --root $work/state/root-$name run -b $work/bundle bench-$name")
  done
  hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/result.json" "${cmds[@]}" >/dev/null
  # The same run, interleaved, with wall-clock and CPU-time medians.
  python3 hack/interleave.py "$runs" --base crun \
    "ours=$ours --root $work/state/root-ours run -b $work/bundle il-ours" \
    "crun=${bin[crun]} --root $work/state/root-crun run -b $work/bundle il-crun" \
    "runc=${bin[runc]} --root $work/state/root-runc run -b $work/bundle il-runc" >"$work/interleaved.txt"
  for name in ours crun runc; do
    /usr/bin/time -f "%M" -o "$work/rss-$name" ${bin[$name]} --root $work/state/root-$name run -b $work/bundle rss-$name
  done

  # exec of /bin/true into a running container.
  cmds=()
  for name in ours crun runc; do
    ${bin[$name]} --root $work/state/root-$name run -d -b $work/sleeper sleeper-$name
    cmds+=(-n "$name" "${bin[$name]} --root $work/state/root-$name exec sleeper-$name /bin/true")
  done
  hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/exec.json" "${cmds[@]}" >/dev/null
  for name in ours crun runc; do ${bin[$name]} --root $work/state/root-$name delete -f sleeper-$name; done

  # ctr run --rm through containerd and the runc v2 shim.
  cat > $work/ctd.toml <<EOF2
version = 2
root = "$work/ctd/root"
state = "$work/ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/ctd/sock"
EOF2
  containerd --config $work/ctd.toml >$work/ctd.log 2>&1 &
  ctd_pid=$!
  ctr="ctr --address $work/ctd/sock --connect-timeout 10s -n bench"
  for _ in $(seq 100); do $ctr version >/dev/null 2>&1 && break; sleep 0.1; done
  $ctr images import $work/bb.tar >/dev/null
  cmds=()
  for name in ours crun runc; do
    cmds+=(-n "$name" "$ctr run --rm --runc-binary ${bin[$name]} localhost/bench-busybox:latest ctr-$name /bin/true")
  done
  hyperfine -N --warmup 3 --runs "$(( runs < 30 ? runs : 30 ))" --export-json "$work/ctr.json" "${cmds[@]}" >/dev/null
  kill $ctd_pid; wait $ctd_pid 2>/dev/null || true
  umount -R "$work/ctd" 2>/dev/null || true

  # A pod up to its first running container through the CRI plugin (pod removal untimed).
  "$cri_latency" "$(( runs < 20 ? runs : 20 ))" "$work/cri.json" \
    ours="${bin[ours]}" crun="${bin[crun]}" runc="${bin[runc]}"
'

median() { jq -r --arg n "$2" '.results[] | select(.command==$n) | .median' "$work/$1"; }
report() {
  local file=$1 title=$2 crun_median
  crun_median=$(median "$file" crun)
  echo "== $title"
  printf '%-6s %12s %10s %14s\n' runtime "median(ms)" "vs crun" "peak RSS(KiB)"
  for name in ours crun runc; do
    local m rss="-"
    m=$(median "$file" "$name")
    [ "$file" = result.json ] && rss=$(cat "$work/rss-$name")
    printf '%-6s %12.2f %9.2fx %14s\n' "$name" "$(echo "$m*1000" | bc -l)" "$(echo "$m/$crun_median" | bc -l)" "$rss"
  done
}
report result.json "run /bin/true"
echo "== run /bin/true, interleaved"
cat "$work/interleaved.txt"
report exec.json "exec /bin/true into a running container"
report ctr.json "ctr run --rm (containerd 1.6, runc v2 shim)"
report cri.json "CRI RunPodSandbox + CreateContainer + StartContainer (containerd 1.6 CRI plugin)"
