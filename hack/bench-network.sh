#!/usr/bin/env bash
# Benchmark (not a test): what a bridge network costs a container. `runtime run` of
# /bin/true in imgtool bundles of busybox that differ only in --network: `none`, `bridge`
# (the createRuntime hook attaches the container through the CNI bridge + host-local
# plugins, the poststop hook detaches it), and `bridge` with one published port
# (portmap too, a dozen iptables runs). Reports medians and the extra time over `none`
# (goal: bridge under 30 ms on top of `runtime run`), with hyperfine and interleaved
# (hack/interleave.py, wall and CPU time).
# The runtime's state root and the hooks' state (/run/imgtool/networks) are on a tmpfs
# in a private mount namespace, as /run is on usual hosts (this VM's /run is a
# journal-less ext4, see bench-runtime.sh). The bench's own network (bridge imgtbench0,
# 10.231.250.0/24) and everything of it are removed at the end.
# usage: hack/bench-network.sh [RUNS]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-network: run as root" >&2; exit 1; }
runs=${1:-100}

bash hack/install-deps.sh >/dev/null
# What users install: hack/install.sh's static release build, installed into
# target/install (runtime and imgtool both; the hooks run this imgtool).
PREFIX="$PWD/target/install" bash hack/install.sh >/dev/null
ours="$PWD/target/install/bin/runtime"
imgtool="$PWD/target/install/bin/imgtool"

work=$(mktemp -d /tmp/bench-network.XXXXXX)
net=bench-net bridge=imgtbench0 subnet=10.231.250.0/24
cleanup() {
  set +e +o pipefail
  for b in "$work"/b-*; do [ -f "$b/imgtool.json" ] && "$imgtool" unbundle "$b" >/dev/null 2>&1; done
  ip link delete "$bridge" 2>/dev/null || true
  for t in nat filter; do
    iptables-save -t "$t" | grep -e "imgtool network $net\"" -e "name: \\\\\"$net\\\\\"" | sed 's/^-A /-D /' |
      while read -r rule; do eval "iptables -w -t $t $rule" || true; done
  done
  rm -rf "/run/imgtool/networks/ipam/$net" /run/imgtool/networks/"$net".*
  grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# busybox, imported from busybox-static (offline).
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
"$imgtool" --store "$work/store" import -q "$work/busybox.tar" localhost/busybox:bench -c 'CMD ["sh"]' >/dev/null
echo "{\"networks\": {\"$net\": {\"bridge\": \"$bridge\", \"subnet\": \"$subnet\"}}}" >"$work/networks.json"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mk() { "$imgtool" --store "$work/store" bundle localhost/busybox:bench "$work/b-$1" "${@:2}" -- /bin/true >/dev/null; }
mk none --network none
mk bridge --network "bridge:$net" --network-config "$work/networks.json"
mk port --network "bridge:$net" --network-config "$work/networks.json" -p "127.0.0.1:$port:80"

export ours work runs
unshare -m bash -euo pipefail -c '
  mount --make-rprivate /
  mkdir -p "$work/state" /run/imgtool/networks
  mount -t tmpfs -o mode=0700 state "$work/state"
  mount -t tmpfs -o mode=0755 hooks /run/imgtool/networks
  cmds=()
  for b in none bridge port; do
    cmds+=(-n "$b" "$ours --root $work/state run -b $work/b-$b bench-$b")
  done
  hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/result.json" "${cmds[@]}" >/dev/null
  python3 hack/interleave.py "$runs" --base none \
    "none=$ours --root $work/state run -b $work/b-none il-none" \
    "bridge=$ours --root $work/state run -b $work/b-bridge il-bridge" \
    "port=$ours --root $work/state run -b $work/b-port il-port" >"$work/interleaved.txt"
  left=$(ls /run/imgtool/networks/containers | wc -l)
  [ "$left" -eq 0 ] || { echo "bench-network: $left hook records left" >&2; exit 1; }
'

median() { jq -r ".results[] | select(.command == \"$1\") | .median" "$work/result.json"; }
# (not $bridge: cleanup deletes the bridge by that name)
t_none=$(median none) t_bridge=$(median bridge) t_port=$(median port)
awk -v n="$t_none" -v b="$t_bridge" -v p="$t_port" 'BEGIN {
  printf "runtime run of /bin/true (hyperfine medians): none %.1f ms, bridge %.1f ms, bridge + -p %.1f ms\n", n*1000, b*1000, p*1000
  printf "a bridge network costs %.1f ms over none (goal < 30 ms); a published port %.1f ms more\n", (b-n)*1000, (p-b)*1000
}'
echo "interleaved:"
cat "$work/interleaved.txt"
