#!/usr/bin/env bash
# Long fuzzing of layer application (imgtool/tests/layer_fuzz.rs): runs the property test
# in batches of CASES random cases (fresh random seed each batch) for MINUTES minutes and
# prints the totals. A finding stops the run with proptest's minimized failing input
# (also saved in imgtool/tests/layer_fuzz.regressions, which later runs replay first).
#
#   hack/fuzz-layers.sh            # 5 minutes, batches of 5000 cases
#   MINUTES=30 CASES=20000 hack/fuzz-layers.sh
#   ENGINE=libfuzzer MINUTES=10 hack/fuzz-layers.sh   # cargo-fuzz target imgtool/fuzz
#                                                     # (needs nightly and cargo-fuzz)
# Must run as root (layers create device nodes and set owners).
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${MINUTES:-5}"
if [ "${ENGINE:-proptest}" = libfuzzer ]; then
  cd imgtool/fuzz
  mkdir -p corpus/apply_layer
  exec cargo +nightly fuzz run apply_layer -- -max_total_time=$((MINUTES * 60)) -rss_limit_mb=2048
fi
CASES="${CASES:-5000}"
PROFILE="${PROFILE:-release}"
profile_flag=()
[ "$PROFILE" = release ] && profile_flag=(--release)

cargo test "${profile_flag[@]}" -p imgtool --test layer_fuzz --no-run
end=$(( $(date +%s) + MINUTES * 60 ))
batches=0 cases=0 layers=0 ok=0 refused=0 entries=0
start=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
  log=$(PROPTEST_CASES="$CASES" cargo test -q "${profile_flag[@]}" -p imgtool --test layer_fuzz \
        -- --nocapture 2>&1) || { echo "$log"; echo "FINDING after $cases cases: see above" >&2; exit 1; }
  line=$(grep '^layer fuzz:' <<<"$log")
  # layer fuzz: N cases, L layers applied (O ok, R refused with an error), E entries generated
  read -r c l o r e < <(sed -E 's/[^0-9]+/ /g' <<<"$line")
  batches=$((batches + 1)) cases=$((cases + c)) layers=$((layers + l))
  ok=$((ok + o)) refused=$((refused + r)) entries=$((entries + e))
  echo "batch $batches: $line"
done
secs=$(( $(date +%s) - start ))
echo "fuzz-layers: $cases cases in ${secs}s ($batches batches): $layers layers applied," \
     "$ok ok, $refused refused with an error, $entries entries; no panic, nothing written outside the root"
