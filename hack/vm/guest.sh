#!/bin/sh
# Runs inside the guest hack/vm-test.sh boots (started by vm-test.service, as root, once
# systemd is up): every line of RESULTS/plan ("NAME<TAB>BINARY<TAB>TEST<TAB>EXECUTABLE"),
# the test executable driving BINARY (ours from the shared build, or "runc": the guest's
# runc) as RUNTIME_BIN. Each test file's
# output goes to RESULTS/logs/RUNTIME-TEST.log (renamed .failed when it fails), a line per
# run to RESULTS/summary and the console; RESULTS/done holds the number of failed runs.
# The unit powers the guest off when this script ends.
#
# usage: guest.sh CHECKOUT RESULTS
set -u
src=$1
res=$2
: >"$res/booted"

# The tests know from SPEC_TESTS_IN_VM that they are in the guest built for them: tests that
# need cgroup v2 or systemd fail there instead of reporting "not run here".
export CI=true SPEC_TESTS_IN_VM=1 HOME=/root LANG=C.UTF-8
# The checkout is shared read-only: tests that cannot run in the guest (the cgroup v1
# ones) are recorded in the results directory, which vm-test.sh adds to the summary.
export SPEC_TESTS_NOT_RUN="$res/not-run.txt"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "vm-test: $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

say "guest up after $(uptime_s) s: kernel $(uname -r), $(systemctl --version | head -n1)," \
  "/sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup), runc $(runc --version | sed -n 's/^runc version //p')"
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
  say "FAILED: the guest is not on a pure cgroup v2 hierarchy"
  echo 1 >"$res/done"
  exit 1
fi

file_timeout=$(cat "$res/file-timeout" 2>/dev/null || echo 300)
mkdir -p "$res/logs"
: >"$res/summary"
failed=0
tab=$(printf '\t')
while IFS="$tab" read -r runtime bin test exe; do
  [ "$bin" = runc ] && bin=$(command -v runc)
  log=$res/logs/$runtime-$test.log
  start=$(uptime_s)
  recorded=$(cat "$SPEC_TESTS_NOT_RUN" 2>/dev/null | wc -l)
  # From /tmp: the tests make their bundles and state roots in the temporary directory.
  # A test file gets VM_FILE_TIMEOUT seconds: a hang is then a failure with the guest's
  # processes (and where each waits) in its log, not the whole run's timeout.
  (cd /tmp && RUNTIME_BIN=$bin exec "$exe" --test-threads=2) </dev/null >"$log" 2>&1 &
  pid=$!
  waited=0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$file_timeout" ]; do
    sleep 1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    {
      echo "vm-test: $test still running after $file_timeout s; the guest's processes:"
      ps -eo pid,ppid,stat,wchan:32,etimes,args
      # Where each thread of the processes under the test waits (or runs).
      for t in /proc/[0-9]*/task/[0-9]*; do
        case $(cat "$t/cmdline" 2>/dev/null | tr '\0' ' ') in
          *runtime*|*spec-root*) ;;
          *) continue ;;
        esac
        echo "== $t: $(cut -d' ' -f3 "$t/stat" 2>/dev/null) $(cat "$t/comm" 2>/dev/null) syscall: $(cat "$t/syscall" 2>/dev/null)"
        cat "$t/stack" 2>/dev/null
        if [ "$(cut -d' ' -f3 "$t/stat" 2>/dev/null)" = R ]; then
          # A running thread: where it runs, sampled (the syscall file names the syscall
          # and the user pc while it is in one), and the mappings to resolve the pcs.
          i=0
          while [ $i -lt 40 ]; do cat "$t/syscall" 2>/dev/null; i=$((i + 1)); done | sort | uniq -c | sort -rn | head -n 8
          grep ' r-xp ' "${t%/task/*}/maps" 2>/dev/null | head -n 12
        fi
      done
      # And the stacks of every thread of the runtimes still running.
      for p in $(pgrep -x runtime); do
        echo "== gdb: runtime pid $p"
        timeout 60 gdb -p "$p" -batch -ex 'thread apply all bt 30' 2>&1 | grep -v '^\[New LWP\|^warning:' | head -n 120
      done
    } >>"$log" 2>&1
    pkill -KILL -P "$pid" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid"
  rc=$?
  took=$(awk -v a="$start" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }')
  counts=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 passed, \2 failed/p' "$log" | tail -n1)
  # Records of tests not run (libtest keeps a passing test's own NOT RUN line to itself).
  not_run=$(($(cat "$SPEC_TESTS_NOT_RUN" 2>/dev/null | wc -l) - recorded))
  if [ "$rc" -eq 0 ]; then
    verdict=ok
  else
    verdict=FAILED
    failed=$((failed + 1))
    mv "$log" "${log%.log}.failed"
  fi
  line=$(printf '%-6s %-7s %-20s %s, %s not run here; %s s' "$verdict" "$runtime" "$test" "${counts:-no test result}" "$not_run" "$took")
  echo "$line" >>"$res/summary"
  say "$line"
done <"$res/plan"

echo "$failed" >"$res/done"
say "plan finished after $(uptime_s) s of uptime, $failed failed"
