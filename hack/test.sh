#!/usr/bin/env bash
# The one test command (README, .ci/run): installs system packages, builds both binaries,
# then runs every unit, integration and conformance test, and prints a summary in which
# the tests that could not run on this host are counted apart from the passed ones
# (hack/test-summary.sh). Must run as root.
#
# Then what users install: hack/install.sh (the static release build, man pages,
# completions) into target/install, and a smoke set of the spec tests against exactly
# those binaries (hack/test-installed.sh).
#
# Environment: TEST_THREADS (default 4) for cargo test; CI=true makes a missing tool a
# failure (spec-tests/src/not_run.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "hack/test.sh: the tests create containers, mounts and users: run as root" >&2
  exit 1
fi

bash hack/install-deps.sh

# The libcontainer fork must be exactly upstream + its patch series (third_party/README.md).
bash third_party/patch-series.sh check

export CARGO_TERM_COLOR=never
cargo build --workspace --bins
export RUNTIME_BIN="$PWD/target/debug/runtime"
export IMGTOOL_BIN="$PWD/target/debug/imgtool"

mkdir -p target
export SPEC_TESTS_NOT_RUN="$PWD/target/spec-tests-not-run.txt"
: > "$SPEC_TESTS_NOT_RUN"
log="$PWD/target/test-output.log"
: > "$log"
status=0

# The vendored crates' own unit tests (their own lock files, so their own target dir).
bash hack/test-third-party.sh 2>&1 | tee -a "$log" || status=1

# Unit tests of the crates, then the spec tests that drive the binaries.
cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-4}" 2>&1 |
  tee -a "$log" || status=1

# What users install (hack/install.sh: the static release binaries, man pages,
# completions), driven by the smoke set of spec tests.
bash hack/test-installed.sh 2>&1 | tee -a "$log" || status=1

# The cgroup v2, systemd-driver and rootless tests need a host this machine is not (it is
# cgroup v1 hybrid without systemd): they run in a Debian 12 guest, against our runtime and
# against runc (hack/vm-test.sh). VM_TEST=0 leaves them out of a local run.
if [ "${VM_TEST:-1}" != 0 ]; then
  bash hack/vm-test.sh 2>&1 | tee -a "$log" || status=1
fi

bash hack/test-summary.sh "$log" "$SPEC_TESTS_NOT_RUN"
exit "$status"
