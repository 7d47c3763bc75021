#!/usr/bin/env bash
# Prints the end-of-suite summary of hack/test.sh: the counts of every `cargo test` result
# line in LOG, and the tests that did not run on this host with their reasons (recorded by
# spec-tests' `not_run` module in RECORDS, one "test<TAB>reason" line each). A test that
# did not run is subtracted from the passed count: libtest reports it as "ok", and it is
# not. A part of a test that did not run (a negative control against a release build, a
# real CRIU dump on a kernel CRIU cannot dump on) is listed too.
# usage: hack/test-summary.sh LOG RECORDS
set -euo pipefail
log=${1:?usage: test-summary.sh LOG RECORDS}
records=${2:?usage: test-summary.sh LOG RECORDS}

read -r passed failed ignored < <(
  sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$log" |
    awk '{p += $1; f += $2; i += $3} END {print p + 0, f + 0, i + 0}'
)
whole=0 parts=0
if [ -s "$records" ]; then
  # One line per test (or part): a test that records twice counts once.
  whole=$(cut -f1 "$records" | sort -u | grep -cv ' (' || true)
  parts=$(cut -f1 "$records" | sort -u | grep -c ' (' || true)
fi

echo
echo "== test summary"
echo "passed:  $((passed - whole))"
echo "failed:  $failed"
echo "ignored: $ignored"
echo "not run: $whole tests and $parts parts of tests, on this host (not counted as passed):"
if [ -s "$records" ]; then
  sort -u "$records" | awk -F'\t' '{printf "  %s: %s\n", $1, $2}'
fi
