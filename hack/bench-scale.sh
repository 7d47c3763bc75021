#!/usr/bin/env bash
# Benchmark (not a test): start N containers (busybox `sleep`, `run -d`) one after another
# with this runtime, crun and runc in the same run; report the time to start them all, the
# resident memory of the runtime's own processes while they run (`run -d` exits, so the
# expected figure is 0: the containers' `sleep` inits are the containers', not the
# runtime's, and are reported separately), and the time to `delete -f` them all.
# As in hack/bench-runtime.sh, crun 1.8 refuses this host's cgroup hybrid mode while cgroup2
# lists a controller, so every runtime runs inside `unshare -m` with
# /sys/fs/cgroup/unified unmounted there (the host is unchanged).
# The runtime measured is the one users install: `-r BINARY` (an installed `runtime`, or
# hack/build-static.sh's output), else hack/install.sh builds and installs it into
# target/install.
# Every runtime's state root is on a tmpfs, as /run is on usual hosts (see
# hack/bench-runtime.sh). `--only NAME[,NAME]` measures some of ours, crun, runc.
# usage: hack/bench-scale.sh [-r BINARY] [--only NAMES] [N]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-scale: run as root" >&2; exit 1; }
ours="" n=1000 only="ours crun runc"
while [ $# -gt 0 ]; do
  case "$1" in
    -r) ours=$2; shift 2 ;;
    --only) only=${2//,/ }; shift 2 ;;
    *) n=$1; shift ;;
  esac
done
if [ -z "$ours" ]; then
  # What users install: hack/install.sh's static, non-PIE release build, installed into
  # target/install.
  PREFIX="$PWD/target/install" bash hack/install.sh >/dev/null
  ours="$PWD/target/install/bin/runtime"
fi
ours=$(realpath "$ours")

bash hack/install-deps.sh >/dev/null

work=$(mktemp -d /tmp/bench-scale.XXXXXX)
trap 'rm -rf "$work"' EXIT
hack/make-busybox-bundle.sh "$work/sleeper" "$ours" -- sleep 36000 >/dev/null

echo "runtime: $ours; $(date -Is) $(uptime | sed 's/.*load/load/'), $(nproc) CPUs"
export ours work n only
unshare -m bash -euo pipefail -c '
  mount --make-rprivate /
  mountpoint -q /sys/fs/cgroup/unified && umount /sys/fs/cgroup/unified
  mkdir -p "$work/state"
  mount -t tmpfs -o mode=0700 state "$work/state"
  declare -A bin=([ours]="$ours" [crun]="$(command -v crun)" [runc]="$(command -v runc)")
  declare -A comm=([ours]=runtime [crun]=crun [runc]=runc)
  now() { date +%s.%N; }
  # Sum of VmRSS (KiB) and count of the processes whose command name is $1 (and, with
  # $2, whose command line is $2 with NULs as spaces).
  rss_of() {
    local total=0 count=0 f name kib
    for f in /proc/[0-9]*/status; do
      name=$(awk "/^Name:/{print \$2; exit}" "$f" 2>/dev/null) || continue
      [ "$name" = "$1" ] || continue
      # A zombie holds no memory (an exited helper of a runtime not yet reaped).
      grep -q "^State:.*Z" "$f" 2>/dev/null && continue
      if [ -n "${2:-}" ]; then
        [ "$(tr "\0" " " < "${f%/status}/cmdline" 2>/dev/null)" = "$2 " ] || continue
      fi
      kib=$(awk "/^VmRSS:/{print \$2; exit}" "$f" 2>/dev/null) || kib=0
      total=$((total + ${kib:-0})); count=$((count + 1))
    done
    echo "$total $count"
  }
  for name in $only; do
    root="$work/state/root-$name"
    mkdir -p "$root"
    tenth=$(( n / 10 > 0 ? n / 10 : 1 ))
    t0=$(now)
    for i in $(seq "$n"); do
      "${bin[$name]}" --root "$root" run -d -b "$work/sleeper" "scale-$name-$i" </dev/null >/dev/null 2>"$work/err-$name" \
        || { echo "$name: run -d of container $i failed: $(tail -n1 "$work/err-$name")" >&2; exit 1; }
      # When the first and the last tenth start and end: does a start cost more when
      # many containers run?
      [ "$i" -eq "$tenth" ] && ta=$(now)
      [ "$i" -eq $(( n - tenth )) ] && tb=$(now)
    done
    t1=$(now)
    running=$("${bin[$name]}" --root "$root" list -q | wc -l)
    read -r ours_rss ours_count < <(rss_of "${comm[$name]}")
    read -r init_rss init_count < <(rss_of sleep "sleep 36000")
    t2=$(now)
    for i in $(seq "$n"); do
      "${bin[$name]}" --root "$root" delete -f "scale-$name-$i" </dev/null >/dev/null 2>"$work/err-$name" \
        || { echo "$name: delete -f of container $i failed: $(tail -n1 "$work/err-$name")" >&2; exit 1; }
    done
    t3=$(now)
    left=$("${bin[$name]}" --root "$root" list -q | wc -l)
    first=$(echo "($ta - $t0) * 1000 / $tenth" | bc -l); last=$(echo "($t1 - $tb) * 1000 / $tenth" | bc -l)
    echo "$name $(echo "$t1 - $t0" | bc -l) $(echo "$t3 - $t2" | bc -l) $running $ours_rss $ours_count $init_rss $init_count $left $first $last" >> "$work/result"
  done
'

echo "$(date -Is) $(uptime | sed 's/.*load/load/')"
echo "== $n busybox sleep containers, run -d one after another, then delete -f each"
printf "%-6s %10s %12s %16s %8s %16s %18s %12s %6s\n" runtime "start(s)" "per ctr(ms)" "first/last 10%" running "runtime RSS(KiB)" "init RSS(KiB)/ctr" "delete(s)" left
while read -r name start del running rss count irss icount left first last; do
  per=$(echo "$start * 1000 / $n" | bc -l)
  printf "%-6s %10.1f %12.1f %7.1f /%7.1f %8s %11s (%3s p) %18.0f %12.1f %6s\n" "$name" "$start" "$per" "$first" "$last" "$running" "$rss" "$count" \
    "$(echo "$irss / ($icount + ($icount == 0))" | bc -l)" "$del" "$left"
done < "$work/result"
