#!/usr/bin/env bash
# The one test command (README, .ci/run): installs system packages, builds both binaries,
# then runs every unit, integration and conformance test. Must run as root.
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

# Unit tests of the crates, then the spec tests that drive the binaries.
cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"

# The cgroup v2, systemd-driver and rootless tests need a host this machine is not (it is
# cgroup v1 hybrid without systemd): they run in a Debian 12 guest, against our runtime and
# against runc (hack/vm-test.sh). VM_TEST=0 leaves them out of a local run.
if [ "${VM_TEST:-1}" != 0 ]; then
  bash hack/vm-test.sh
fi
