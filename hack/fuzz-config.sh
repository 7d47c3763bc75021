#!/usr/bin/env bash
# Fuzzing (not part of hack/test.sh's default budget): runs the property tests over the
# runtime's config loading and validation (runtime/src/container/config_fuzz.rs) with many
# more cases than `cargo test` does. A panic or a multi-line error fails; proptest then
# prints the shrunk input. Results are recorded in docs/SECURITY.md.
# usage: hack/fuzz-config.sh [CASES]   (default 50000 per property)
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-50000}
start=$(date +%s)
PROPTEST_CASES="$cases" cargo test -p runtime config_fuzz -- --test-threads=2 2>&1 | tee /tmp/fuzz-config.log | grep -E "^test |test result|panicked|minimal failing input" || true
end=$(date +%s)
if grep -q "test result: ok" /tmp/fuzz-config.log; then
  echo "fuzz-config: $cases cases per property, no panic, $((end - start)) s"
else
  echo "fuzz-config: FAILED (see /tmp/fuzz-config.log)" >&2
  exit 1
fi
