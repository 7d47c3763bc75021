#!/usr/bin/env bash
# Benchmark (not a test): every operation of a container's life with this runtime, crun and
# runc, interleaved in one run (hack/bench-ops.py: each round runs each operation once per
# runtime, the runtimes in a shuffled order, so a load change on this shared machine hits
# all alike), with median wall-clock and CPU times and their ratios to crun:
#   create, start, exec /bin/true, kill KILL until the init has exited, delete, run -d,
#   delete -f of a running container, run -d + delete, and a foreground `run /bin/true`
#   with stdio on /dev/null, on pipes and on a terminal; once back to back and once with
#   50 ms between commands (a cgroup attach's grace period is then paid by every command);
# then the same operations counted under `perf stat` (system calls, page faults, context
# switches, CPU), which do not depend on the load, and peak RSS of a foreground run.
# With --clients it also times `ctr run --rm` through containerd's runc v2 shim and a CRI
# pod up to its first running container (spec-tests/examples/cri-latency.rs).
#
# The runtime measured is the one users install: `-r BINARY` (an installed `runtime`, or
# hack/build-static.sh's output), else hack/install.sh builds and installs it into
# target/install. crun and runc are Debian's, from PATH.
# crun 1.8 refuses this host's cgroup hybrid mode while cgroup2 lists a controller, so every
# runtime runs inside `unshare -m` with /sys/fs/cgroup/unified unmounted there (the host is
# unchanged), with its state root (--root) on a tmpfs, as /run is on usual hosts (this VM's
# /run is a journal-less ext4 whose inode allocator penalises files created soon after
# deletions; docs/performance.md, "State roots").
#
# usage: hack/bench-runtime.sh [-r BINARY] [--clients] [ROUNDS]   (default 100 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-runtime: run as root" >&2; exit 1; }
ours="" clients="" rounds=100 cri_latency=""
while [ $# -gt 0 ]; do
  case "$1" in
    -r) ours=$2; shift 2 ;;
    --clients) clients=yes; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
    *) rounds=$1; shift ;;
  esac
done
if [ -z "$ours" ]; then
  # What users install: hack/install.sh's static, non-PIE release build, installed into
  # target/install.
  PREFIX="$PWD/target/install" bash hack/install.sh >/dev/null
  ours="$PWD/target/install/bin/runtime"
fi
ours=$(realpath "$ours")
[ -x "$ours" ] || { echo "bench-runtime: $ours is not an executable" >&2; exit 1; }

bash hack/install-deps.sh >/dev/null
work=$(mktemp -d /tmp/bench-runtime.XXXXXX)
trap 'rm -rf "$work"' EXIT
hack/make-busybox-bundle.sh "$work/true" "$ours" -- /bin/true >/dev/null
hack/make-busybox-bundle.sh "$work/sleeper" "$ours" -- sleep 3600 >/dev/null
if [ -n "$clients" ]; then
  cargo build --release -p spec-tests --example cri-latency -q
  cri_latency="$PWD/target/release/examples/cri-latency"
  # A busybox image for containerd, made offline.
  mkdir -p "$work/img-rootfs/bin"
  cp /bin/busybox "$work/img-rootfs/bin/"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/img-rootfs/bin/$a"; done
  umoci init --layout "$work/img" && umoci new --image "$work/img:latest"
  umoci insert --rootless --image "$work/img:latest" "$work/img-rootfs" / >/dev/null
  skopeo copy -q "oci:$work/img:latest" "docker-archive:$work/bb.tar:localhost/bench-busybox:latest"
fi

echo "runtime: $ours ($(stat -c %s "$ours") bytes); crun $(crun --version | head -1 | awk '{print $3}'); runc $(runc --version | head -1 | awk '{print $3}')"
echo "$(date -Is) $(uptime | sed 's/.*load/load/'), $(nproc) CPUs, kernel $(uname -r)"
export ours work rounds clients cri_latency
unshare -m bash -euo pipefail -c '
  mount --make-rprivate /
  mountpoint -q /sys/fs/cgroup/unified && umount /sys/fs/cgroup/unified
  mkdir -p "$work/state"
  mount -t tmpfs -o mode=0700 state "$work/state"
  declare -A bin=([ours]="$ours" [crun]="$(command -v crun)" [runc]="$(command -v runc)")
  echo
  echo "== every operation, $rounds interleaved rounds: medians (ms) and ratios to crun"
  python3 hack/bench-ops.py "$rounds" --base crun --counts 10 --root "$work/state/ops" \
    --sleeper "$work/sleeper" --true "$work/true" \
    ours="${bin[ours]}" crun="${bin[crun]}" runc="${bin[runc]}"
  echo
  echo "== the same, each command started 50 ms after the previous one ended (as a supervisor"
  echo "   spaces them: no command shares the grace period of a cgroup attach with another)"
  echo "$(date -Is) $(uptime | sed "s/.*load/load/")"
  python3 hack/bench-ops.py "$rounds" --base crun --gap 50 --root "$work/state/gap" \
    --sleeper "$work/sleeper" --true "$work/true" \
    ours="${bin[ours]}" crun="${bin[crun]}" runc="${bin[runc]}"
  echo "$(date -Is) $(uptime | sed "s/.*load/load/")"
  echo
  echo "== peak RSS of a foreground run (KiB)"
  for name in ours crun runc; do
    mkdir -p "$work/state/rss-$name"
    /usr/bin/time -f "%M" -o "$work/rss-$name" ${bin[$name]} --root "$work/state/rss-$name" \
      run -b "$work/true" rss </dev/null >/dev/null
    printf "%-6s %8s\n" "$name" "$(cat "$work/rss-$name")"
  done
  echo "$(date -Is) $(uptime | sed "s/.*load/load/")"
  [ -n "$clients" ] || exit 0

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
  hyperfine -N --warmup 3 --runs "$(( rounds < 30 ? rounds : 30 ))" --export-json "$work/ctr.json" "${cmds[@]}" >/dev/null
  kill $ctd_pid; wait $ctd_pid 2>/dev/null || true
  umount -R "$work/ctd" 2>/dev/null || true
  # A pod up to its first running container through the CRI plugin (pod removal untimed).
  "$cri_latency" "$(( rounds < 20 ? rounds : 20 ))" "$work/cri.json" \
    ours="${bin[ours]}" crun="${bin[crun]}" runc="${bin[runc]}"
'
[ -n "$clients" ] || exit 0

median() { jq -r --arg n "$2" '.results[] | select(.command==$n) | .median' "$work/$1"; }
report() {
  local file=$1 title=$2 crun_median
  crun_median=$(median "$file" crun)
  echo
  echo "== $title"
  printf '%-6s %12s %10s\n' runtime "median(ms)" "vs crun"
  for name in ours crun runc; do
    local m
    m=$(median "$file" "$name")
    printf '%-6s %12.2f %9.2fx\n' "$name" "$(echo "$m*1000" | bc -l)" "$(echo "$m/$crun_median" | bc -l)"
  done
}
report ctr.json "ctr run --rm (containerd 1.6, runc v2 shim)"
report cri.json "CRI RunPodSandbox + CreateContainer + StartContainer (containerd 1.6 CRI plugin)"
