#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, build, make a busybox bundle
# and run it with `runtime`, printing the container's output. Everything it creates is
# removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "hack/demo.sh: run as root (it creates namespaces, cgroups and mounts)" >&2
  exit 1
fi

bash hack/install-deps.sh >/dev/null
cargo build --release -p runtime -q
RUNTIME="$PWD/target/release/runtime"

work=$(mktemp -d /tmp/demo.XXXXXX)
cleanup() {
  "$RUNTIME" --root "$work/run" delete --force demo1 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

hack/make-busybox-bundle.sh "$work/bundle" "$RUNTIME" -- \
  sh -c 'echo "hello from container $(hostname): uid $(id -u), pid $$, $(ls /bin | wc -l) busybox applets"'
echo "+ runtime run -b $work/bundle demo1"
"$RUNTIME" --root "$work/run" run -b "$work/bundle" demo1
