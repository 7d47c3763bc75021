#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, build, start a local registry
# on 127.0.0.1, push a busybox image made offline to it, then
#   imgtool pull  ->  imgtool bundle  ->  runtime run
# printing the container's output. Everything it creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "hack/demo.sh: run as root (it creates namespaces, cgroups and mounts)" >&2
  exit 1
fi

bash hack/install-deps.sh >/dev/null
# What users install (hack/install.sh), into target/install rather than /usr/local.
PREFIX="$PWD/target/install" bash hack/install.sh >/dev/null
RUNTIME="$PWD/target/install/bin/runtime"
IMGTOOL="$PWD/target/install/bin/imgtool"

work=$(mktemp -d /tmp/demo.XXXXXX)
cleanup() {
  "$RUNTIME" --root "$work/run" delete --force demo1 >/dev/null 2>&1 || true
  [ -f "$work/bundle/imgtool.json" ] && "$IMGTOOL" unbundle "$work/bundle" >/dev/null 2>&1
  [ -f "$work/registry/pid" ] && kill "$(cat "$work/registry/pid")" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# A registry, and a busybox image built offline and pushed to it.
registry=$(hack/start-registry.sh "$work/registry")
hack/make-busybox-image.sh "$IMGTOOL" "$work/build-store" localhost/busybox:latest
skopeo copy -q --dest-tls-verify=false "oci:$work/build-store:localhost/busybox:latest" "docker://$registry/busybox:latest"

# The user story, on an empty store.
export IMGTOOL_STORE="$work/store"
set -x
"$IMGTOOL" pull -q "$registry/busybox"
"$IMGTOOL" bundle "$registry/busybox" "$work/bundle" -- \
  sh -c 'echo "hello from $(hostname): uid $(id -u), pid $$, $(ls /bin | wc -l) busybox applets"'
"$RUNTIME" --root "$work/run" run -b "$work/bundle" demo1
