#!/usr/bin/env bash
# Makes an OCI bundle from Debian's busybox-static: DIR/rootfs with /bin/busybox and its
# applets as relative links, and DIR/config.json (runc-spec-like defaults, no terminal)
# running the given command (default: sh).
# usage: hack/make-busybox-bundle.sh DIR [RUNTIME] [-- CMD...]
set -euo pipefail
dir=${1:?usage: make-busybox-bundle.sh DIR [RUNTIME] [-- CMD...]}
shift
runtime=${1:-}
[ "${runtime}" = "--" ] && runtime=""
[ -n "${runtime}" ] && shift
[ "${1:-}" = "--" ] && shift
[ -x /bin/busybox ] || { echo "make-busybox-bundle: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 1; }
# Default: the installed runtime (hack/install.sh: PATH, or target/install), else the
# debug build; it is only asked for `runtime spec`.
if [ -z "$runtime" ]; then
  here="$(cd "$(dirname "$0")/.." && pwd)"
  for candidate in "$(command -v runtime || true)" "$here/target/install/bin/runtime" "$here/target/debug/runtime"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && { runtime=$candidate; break; }
  done
  [ -n "$runtime" ] || { echo "make-busybox-bundle: no runtime found (hack/install.sh)" >&2; exit 1; }
fi

mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev" "$dir/rootfs/tmp"
cp /bin/busybox "$dir/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$dir/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/rootfs/etc/group"
chmod 1777 "$dir/rootfs/tmp"

rm -f "$dir/config.json"
"$runtime" spec --bundle "$dir"
args='["sh"]'
if [ "$#" -gt 0 ]; then args=$(printf '%s\n' "$@" | jq -R . | jq -s .); fi
jq --argjson args "$args" '.process.terminal = false | .process.args = $args' "$dir/config.json" > "$dir/config.json.new"
mv "$dir/config.json.new" "$dir/config.json"
