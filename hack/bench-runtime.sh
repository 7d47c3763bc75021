#!/usr/bin/env bash
# Benchmark (not a test): `run` of /bin/true in a busybox bundle, this runtime vs crun and
# runc measured in the same run with hyperfine, printing each median, the ratio to crun and
# peak RSS. crun 1.8 refuses this host's cgroup hybrid mode while cgroup2 lists a
# controller, so every runtime is measured inside `unshare -m` with /sys/fs/cgroup/unified
# unmounted there (the host is unchanged).
# usage: hack/bench-runtime.sh [RUNS]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-runtime: run as root" >&2; exit 1; }
runs=${1:-100}

bash hack/install-deps.sh >/dev/null
cargo build --release -p runtime -q
ours="$PWD/target/release/runtime"

work=$(mktemp -d /tmp/bench-runtime.XXXXXX)
trap 'rm -rf "$work"' EXIT
hack/make-busybox-bundle.sh "$work/bundle" "$ours" -- /bin/true >/dev/null

export ours work runs
unshare -m bash -euo pipefail -c '
  mount --make-rprivate /
  mountpoint -q /sys/fs/cgroup/unified && umount /sys/fs/cgroup/unified
  declare -A bin=([ours]="$ours" [crun]="$(command -v crun)" [runc]="$(command -v runc)")
  cmds=()
  for name in ours crun runc; do
    mkdir -p "$work/root-$name"
    cmds+=(-n "$name" "${bin[$name]} --root $work/root-$name run -b $work/bundle bench-$name")
  done
  hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/result.json" "${cmds[@]}" >/dev/null
  for name in ours crun runc; do
    /usr/bin/time -f "%M" -o "$work/rss-$name" ${bin[$name]} --root $work/root-$name run -b $work/bundle rss-$name
  done
'

crun_median=$(jq -r '.results[] | select(.command=="crun") | .median' "$work/result.json")
printf '%-6s %12s %12s %14s\n' runtime "median(ms)" "vs crun" "peak RSS(KiB)"
for name in ours crun runc; do
  median=$(jq -r --arg n "$name" '.results[] | select(.command==$n) | .median' "$work/result.json")
  printf '%-6s %12.2f %11.2fx %14s\n' "$name" "$(echo "$median*1000" | bc -l)" \
    "$(echo "$median/$crun_median" | bc -l)" "$(cat "$work/rss-$name")"
done
