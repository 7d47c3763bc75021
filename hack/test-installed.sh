#!/usr/bin/env bash
# CI's check of what users install: hack/install.sh into a scratch prefix
# (target/install), then the spec tests of the installation itself (static, non-PIE,
# man pages, completions: tests/installed.rs) and a smoke set of the spec tests with
# RUNTIME_BIN and IMGTOOL_BIN set to exactly the installed binaries. The negative
# controls that need the debug-only _RUNTIME_TEST_UNSAFE switches are recorded as not run
# (hack/test-summary.sh lists them). Run by hack/test.sh; must run as root.
# usage: hack/test-installed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="$PWD/target/install"
rm -rf "$prefix"
start=$(date +%s)
PREFIX="$prefix" bash hack/install.sh
echo "== install (static release build included) took $(( $(date +%s) - start ))s"

export INSTALLED_PREFIX="$prefix"
export RUNTIME_BIN="$prefix/bin/runtime"
export IMGTOOL_BIN="$prefix/bin/imgtool"
threads="${TEST_THREADS:-4}"
status=0
cargo test -p spec-tests --test installed -- --ignored --test-threads="$threads" || status=1
# The smoke set: the lifecycle, exec, the escape regressions, kill -9 at every phase, a
# real client (containerd), and the image user story (pull, bundle, run).
cargo test -p spec-tests --no-fail-fast \
  --test runtime_lifecycle --test runtime_exec --test runtime_escapes \
  --test client_containerd --test imgtool_bundle \
  -- --test-threads="$threads" || status=1
cargo test -p spec-tests --test runtime_faults -- --test-threads="$threads" \
  kill_9_at_every_phase || status=1
exit "$status"
