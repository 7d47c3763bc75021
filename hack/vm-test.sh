#!/usr/bin/env bash
# Runs the runtime's cgroup, lifecycle, exec, update, events, OOM, rootless and systemd-driver
# spec-tests inside a Debian 12 guest: systemd as init and a pure cgroup v2 hierarchy, as on
# Debian 12, Ubuntu 22.04+, Fedora and Kubernetes nodes (this machine is cgroup v1 hybrid
# without systemd). The same tests then run against the guest's runc as the comparison.
#
#   sudo hack/vm-test.sh [TEST...]     TEST: spec-tests test files (default: GUEST_TESTS below)
#
# 1. builds the binaries and the spec-test binaries (cargo, on the host);
# 2. builds the guest image once (hack/vm/image.sh: debootstrap) into $VM_CACHE, keyed by the
#    sha256 of that recipe, so a changed recipe rebuilds it;
# 3. picks the accelerator: KVM if a quick probe boots the guest kernel to its end within
#    $VM_KVM_PROBE_SECONDS, else TCG (software emulation). The probe exists because a KVM
#    that is present is not always one that works: on nested KVM without the features the
#    kernel's decompressor needs, the guest hangs silently;
# 4. boots the guest with the checkout (and the target dir) shared read-only over 9p at the
#    same paths, and a results directory shared writable; hack/vm/guest.sh runs the plan;
# 5. prints each test file's result per runtime, which accelerator was used and how long
#    the image build, the boot and the tests took; exits non-zero on any failure.
#
# Environment: VM_CACHE (default /var/cache/runtime-vm), VM_ACCEL (kvm|tcg: skip the probe),
# VM_RUNTIMES (default "ours runc"), VM_MEMORY_MIB (2048), VM_TIMEOUT_SECONDS (2700), VM_FILE_TIMEOUT (300 s per test file),
# VM_KEEP_RESULTS=1 (keep the results directory), VM_MIRROR (Debian mirror for the image).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

# The tests that concern what the guest exists for. runtime_cgroup_v2 and runtime_systemd
# run only on a cgroup v2 host and report "not run here" elsewhere; the others run on every
# host and are here to prove the same behaviour under systemd and cgroup v2.
GUEST_TESTS=(runtime_cgroup_v2 runtime_systemd runtime_rootless runtime_cgroups runtime_lifecycle runtime_exec)

if [ "$(id -u)" -ne 0 ]; then
  echo "hack/vm-test.sh: builds an image with debootstrap and boots it: run as root" >&2
  exit 1
fi
for tool in qemu-system-x86_64 debootstrap mkfs.ext4 jq; do
  command -v "$tool" >/dev/null || {
    echo "hack/vm-test.sh: $tool is missing (hack/install-deps.sh installs it)" >&2
    exit 1
  }
done

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("${GUEST_TESTS[@]}")
runtimes=${VM_RUNTIMES:-ours runc}
cache=${VM_CACHE:-/var/cache/runtime-vm}
timeout_s=${VM_TIMEOUT_SECONDS:-2700}

now() { date +%s.%N; }
secs() { printf '%.1f' "$(echo "$2 - $1" | bc)"; }

# 1. Binaries: the runtime and, for each test file, its test executable (from cargo's JSON).
export CARGO_TERM_COLOR=never
cargo build --workspace --bins -q
target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done
declare -A exe=()
while IFS=$'\t' read -r name path; do exe[$name]=$path; done < <(
  cargo test -q -p spec-tests --no-run --message-format=json "${test_args[@]}" |
    jq -r 'select(.reason == "compiler-artifact" and .executable != null and .target.kind == ["test"])
           | [.target.name, .executable] | @tsv'
)
for t in "${tests[@]}"; do
  [ -n "${exe[$t]:-}" ] || { echo "hack/vm-test.sh: no test executable for $t" >&2; exit 1; }
done

# 2. The image, built once per recipe.
recipe_hash=$(sha256sum hack/vm/image.sh | cut -c1-16)
image=$cache/$recipe_hash
mkdir -p "$cache"
image_build_s=cached
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$image/rootfs.img" ]; then
  echo "vm-test: building the guest image (recipe $recipe_hash) in $cache"
  t0=$(now)
  work=$cache/.build-$recipe_hash
  rm -rf "$work"
  if ! bash hack/vm/image.sh "$work"; then
    echo "vm-test: image build failed; logs in $work" >&2
    exit 1
  fi
  rm -f "$work"/*.log
  mv "$work" "$image"
  # Images of older recipes are of no further use.
  find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$recipe_hash" -exec rm -rf {} +
  image_build_s=$(secs "$t0" "$(now)")
  echo "vm-test: image built in ${image_build_s} s"
fi
flock -u 9

results=$(mktemp -d /tmp/vm-test.XXXXXX)
qemu_pid=
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null
  if [ "${VM_KEEP_RESULTS:-0}" = 1 ]; then echo "vm-test: results kept in $results"; else rm -rf "$results"; fi
}
trap cleanup EXIT

# 3. The accelerator.
probe_kvm() {
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
  local log=$results/kvm-probe.log deadline pid
  # No root device: a kernel that runs to its end panics at once and, with -no-reboot,
  # QEMU exits. A kernel that hangs prints nothing and is killed at the deadline.
  qemu-system-x86_64 -accel kvm -m 256 -display none -monitor none -nic none -no-reboot \
    -serial "file:$log" -kernel "$image/vmlinuz" -append "console=ttyS0 panic=-1" \
    </dev/null >/dev/null 2>&1 &
  pid=$!
  deadline=$(($(date +%s) + ${VM_KVM_PROBE_SECONDS:-10}))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if grep -aq "Kernel panic" "$log" 2>/dev/null; then
      kill "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 1
}
accel=${VM_ACCEL:-}
if [ -z "$accel" ]; then
  if probe_kvm; then
    accel=kvm
  else
    accel=tcg
    echo "vm-test: KVM unusable here (no /dev/kvm, or the guest kernel did not boot under it within ${VM_KVM_PROBE_SECONDS:-10} s): TCG"
  fi
fi
case $accel in
  kvm) accel_opts=(-accel kvm -cpu host) ;;
  tcg) accel_opts=(-accel tcg,thread=multi) ;;
  *) echo "hack/vm-test.sh: VM_ACCEL must be kvm or tcg" >&2; exit 1 ;;
esac

# 4. The plan the guest runs: one line per runtime and test file, "NAME<TAB>BINARY<TAB>TEST
# <TAB>EXECUTABLE"; the binary "runc" is the guest's.
for rt in $runtimes; do
  case $rt in
    ours) bin=$target_dir/debug/runtime ;;
    runc) bin=runc ;;
    *) echo "hack/vm-test.sh: VM_RUNTIMES holds ours and/or runc, not $rt" >&2; exit 1 ;;
  esac
  for t in "${tests[@]}"; do printf '%s\t%s\t%s\t%s\n' "$rt" "$bin" "$t" "${exe[$t]}"; done
done >"$results/plan"
# How long one test file may run in the guest before it counts as hung (and the guest's
# processes are written to its log).
echo "${VM_FILE_TIMEOUT:-300}" >"$results/file-timeout"

shares=(-virtfs "local,path=$src,mount_tag=src,security_model=none,readonly=on,multidevs=remap"
  -virtfs "local,path=$results,mount_tag=results,security_model=none,multidevs=remap")
cmdline="console=ttyS0 root=/dev/vda rw quiet loglevel=3 vmtest.src=$src"
case $target_dir in
  "$src"/*) ;;
  *)
    shares+=(-virtfs "local,path=$target_dir,mount_tag=target,security_model=none,readonly=on,multidevs=remap")
    cmdline+=" vmtest.target=$target_dir"
    ;;
esac

echo "vm-test: booting the guest ($accel, $(nproc) CPUs) for: $runtimes x ${tests[*]}"
t_boot=$(now)
timeout -k 10 "$timeout_s" qemu-system-x86_64 "${accel_opts[@]}" \
  -smp "$(nproc)" -m "${VM_MEMORY_MIB:-2048}" -display none -monitor none -nic none -no-reboot \
  -chardev "stdio,id=console,logfile=$results/console.log,signal=off" -serial chardev:console \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" -append "$cmdline" \
  -drive "file=$image/rootfs.img,format=raw,if=virtio,snapshot=on" "${shares[@]}" \
  </dev/null &
qemu_pid=$!
set +e
wait "$qemu_pid"
qemu_rc=$?
set -e
qemu_pid=
t_end=$(now)

# 5. Results. The guest stamps `booted` when its test unit starts and `done` at the end
# (the files' times are the host's: 9p files are written by QEMU on the host).
echo
if [ ! -f "$results/booted" ]; then
  echo "vm-test: FAILED: the guest never started its tests (QEMU exit $qemu_rc)" >&2
  tail -n 40 "$results/console.log" >&2 || true
  exit 1
fi
booted=$(stat -c %.9Y "$results/booted")
tests_end=$booted
[ -f "$results/done" ] && tests_end=$(stat -c %.9Y "$results/done")
[ -f "$results/summary" ] && cat "$results/summary"
# What the guest could not run joins hack/test.sh's summary, marked as the guest's.
if [ -n "${SPEC_TESTS_NOT_RUN:-}" ] && [ -s "$results/not-run.txt" ]; then
  sed 's/^/(Debian 12 guest) /' "$results/not-run.txt" >>"$SPEC_TESTS_NOT_RUN"
fi
echo "vm-test: accelerator $accel; image build ${image_build_s}$([ "$image_build_s" = cached ] || echo " s"); boot $(secs "$t_boot" "$booted") s; tests $(secs "$booted" "$tests_end") s; total $(secs "$t_boot" "$t_end") s"
if [ ! -f "$results/done" ]; then
  echo "vm-test: FAILED: the guest did not finish its plan (QEMU exit $qemu_rc; timeout ${timeout_s} s)" >&2
  tail -n 40 "$results/console.log" >&2 || true
  exit 1
fi
failed=$(cat "$results/done")
if [ "$failed" != 0 ]; then
  echo "vm-test: FAILED: $failed test file run(s) failed; their output follows" >&2
  for log in "$results"/logs/*.failed; do
    echo "----- ${log##*/}" >&2
    cat "$log" >&2
  done
  exit 1
fi
echo "vm-test: all passed"
