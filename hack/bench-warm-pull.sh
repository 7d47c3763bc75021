#!/usr/bin/env bash
# Benchmark (not a test): a warm pull of the Debian image (every blob already stored,
# `imgtool pull` only asks the registry for the manifest and finds the rest present),
# measured with hyperfine in three ways, to show what checking the stored blobs costs:
#  - recorded: as imgtool runs (each reused blob: its size and its verification record,
#    imgtool/src/store/verified.rs);
#  - rehash: the records removed before each run, so every reused blob is hashed whole
#    (what checking without a record costs: the first pull after an upgrade, or a store
#    whose blob files were touched);
#  - unchecked: `_IMGTOOL_TEST_UNSAFE=stored-blob-check` (debug builds only), reusing
#    blobs as imgtool did before the check; skipped for a release build;
#  - baseline: `-b BINARY`, another build on the same store (e.g. a release build from
#    before the check), if given.
# The image is the one hack/bench-pull.sh uses (debootstrap minbase, 49 MB compressed),
# from $BENCH_CACHE (default /var/cache/imgtool-bench).
# usage: hack/bench-warm-pull.sh [-i BINARY] [-b BASELINE] [RUNS]   (default 30 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
imgtool="" baseline="" runs=30
while [ $# -gt 0 ]; do
  case "$1" in
    -i) imgtool=$2; shift 2 ;;
    -b) baseline=$(realpath "$2"); shift 2 ;;
    *) runs=$1; shift ;;
  esac
done
imgtool=$(realpath "${imgtool:-$(command -v imgtool)}")
cache=${BENCH_CACHE:-/var/cache/imgtool-bench}
[ -f "$cache/debian-minbase.tar" ] || { echo "bench-warm-pull: run hack/bench-pull.sh once (it makes $cache/debian-minbase.tar)" >&2; exit 1; }
for tool in skopeo hyperfine docker-registry; do
  command -v "$tool" >/dev/null || { echo "bench-warm-pull: $tool missing (hack/install-deps.sh)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/bench-warm-pull.XXXXXX)
cleanup() {
  [ -f "$work/registry/pid" ] && kill "$(cat "$work/registry/pid")" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
registry=$(hack/start-registry.sh "$work/registry")
"$imgtool" --store "$work/src" import -q "$cache/debian-minbase.tar" localhost/debian:minbase >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$work/src:localhost/debian:minbase" "docker://$registry/debian:minbase"
store=$work/store
"$imgtool" --store "$store" pull -q "$registry/debian:minbase" >/dev/null
pull="$imgtool --store $store pull -q $registry/debian:minbase"
# hyperfine takes one --prepare per command (a single one would apply to all).
names=(recorded rehash) prepares=(true "rm -rf $store/imgtool/verified") commands=("$pull" "$pull")
if _IMGTOOL_TEST_UNSAFE=probe "$imgtool" --version 2>&1 | grep -q "test switches compiled in"; then
  names+=(unchecked) prepares+=(true) commands+=("env _IMGTOOL_TEST_UNSAFE=stored-blob-check $pull")
fi
if [ -n "$baseline" ]; then
  names+=(baseline) prepares+=(true) commands+=("$baseline --store $store pull -q $registry/debian:minbase")
fi
args=(-N --warmup 3 --runs "$runs")
for i in "${!names[@]}"; do args+=(--prepare "${prepares[$i]}"); done
for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${commands[$i]}"); done
hyperfine "${args[@]}"
