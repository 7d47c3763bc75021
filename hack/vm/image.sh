#!/usr/bin/env bash
# The recipe of the Debian 12 guest hack/vm-test.sh boots: systemd as init, the pure cgroup
# v2 hierarchy (Debian 12's default), a kernel and an initramfs that mounts the root from a
# virtio disk, and the programs the runtime's spec-tests and runc need. Nothing of the
# checkout is baked in: the guest mounts the checkout over 9p and runs hack/vm/guest.sh
# from it, so changing the tests never rebuilds the image.
#
# usage: hack/vm/image.sh OUTDIR
# Writes OUTDIR/rootfs.img (raw ext4), OUTDIR/vmlinuz and OUTDIR/initrd.img. hack/vm-test.sh
# caches OUTDIR under the sha256 of this file: any change here rebuilds the image.
set -euo pipefail

out=${1:?usage: hack/vm/image.sh OUTDIR}
mirror=${VM_MIRROR:-http://deb.debian.org/debian}
suite=bookworm

# What the guest runs: systemd (init, logind, the user manager, systemd-run) and D-Bus on
# both buses (the systemd cgroup driver talks to the system one as root and to the user
# one rootless); the kernel; busybox for the test bundles; runc and crun to compare with;
# newuidmap/newgidmap for rootless containers with subordinate id ranges; and the tools
# the spec-tests call (useradd, setpriv, ip, ps); gdb, so that guest.sh can print the
# stacks of a runtime that hangs.
PACKAGES=(
  systemd systemd-sysv dbus dbus-user-session libpam-systemd
  linux-image-amd64 initramfs-tools kmod e2fsprogs
  busybox-static runc crun uidmap libseccomp2
  passwd util-linux procps iproute2 gdb
)

root="$out/root"
mkdir -p "$out"
rm -rf "$root"

echo "image: debootstrap $suite from $mirror"
debootstrap --variant=minbase --include=systemd-sysv,ca-certificates "$suite" "$root" "$mirror" \
  >"$out/debootstrap.log" 2>&1 || {
  tail -n 30 "$out/debootstrap.log" >&2
  exit 1
}

# Packages are configured without starting anything on the host.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

# The initramfs only has to find an ext4 root on a virtio disk: a small one (MODULES=list)
# decompresses and loads quickly under software emulation.
mkdir -p "$root/etc/initramfs-tools/conf.d"
echo 'MODULES=list' >"$root/etc/initramfs-tools/conf.d/vm.conf"
printf '%s\n' virtio_pci virtio_blk ext4 >>"$root/etc/initramfs-tools/modules"

mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
for fs in proc sys dev; do
  mount --rbind "/$fs" "$root/$fs"
  mount --make-rslave "$root/$fs"
  mounts+=("$root/$fs")
done

echo "image: installing ${PACKAGES[*]}"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  "${PACKAGES[@]}" >"$out/apt.log" 2>&1 || {
  tail -n 30 "$out/apt.log" >&2
  exit 1
}
chroot "$root" apt-get clean
cleanup
mounts=()
rm -f "$root/usr/sbin/policy-rc.d"

echo vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 vm\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,relatime 0 1\n' >"$root/etc/fstab"

# The boot is a test run, not a server: no gettys (the serial line carries the test
# output), no timers, nothing that waits for a network.
for unit in getty@tty1.service serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-timesyncd.service \
  systemd-networkd-wait-online.service man-db.timer dpkg-db-backup.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# The entry point: mounts the shares hack/vm-test.sh names on the kernel command line and
# runs the checkout's hack/vm/guest.sh, then powers off whatever happened.
cat >"$root/usr/local/sbin/vm-test-entry" <<'EOF'
#!/bin/sh
# Mounts the 9p shares named on the kernel command line (vmtest.src=PATH, vmtest.target=
# PATH) at those paths, the results share at /vm-results, and runs PATH/hack/vm/guest.sh.
set -u
src= target=
for word in $(cat /proc/cmdline); do
  case $word in
    vmtest.src=*) src=${word#vmtest.src=} ;;
    vmtest.target=*) target=${word#vmtest.target=} ;;
  esac
done
opts=trans=virtio,version=9p2000.L,msize=1048576
mkdir -p /vm-results
mount -t 9p -o "$opts" results /vm-results || { echo "vm-test: cannot mount the results share"; exit 1; }
if [ -z "$src" ]; then echo "vm-test: no vmtest.src= on the kernel command line" | tee /vm-results/error; exit 1; fi
mkdir -p "$src" && mount -t 9p -o "$opts,ro,cache=loose" src "$src" ||
  { echo "vm-test: cannot mount the checkout at $src" | tee /vm-results/error; exit 1; }
if [ -n "$target" ]; then
  mkdir -p "$target" && mount -t 9p -o "$opts,ro,cache=loose" target "$target" ||
    { echo "vm-test: cannot mount the target dir at $target" | tee /vm-results/error; exit 1; }
fi
exec "$src/hack/vm/guest.sh" "$src" /vm-results
EOF
chmod 755 "$root/usr/local/sbin/vm-test-entry"

cat >"$root/etc/systemd/system/vm-test.service" <<'EOF'
[Unit]
Description=runtime spec-tests (hack/vm-test.sh)
After=multi-user.target dbus.service systemd-logind.service systemd-user-sessions.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/vm-test-entry
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
ExecStopPost=/bin/systemctl poweroff --no-block

[Install]
WantedBy=default.target
EOF
ln -sf /etc/systemd/system/vm-test.service "$root/etc/systemd/system/default.target.wants/vm-test.service" 2>/dev/null ||
  { mkdir -p "$root/etc/systemd/system/default.target.wants" &&
    ln -sf /etc/systemd/system/vm-test.service "$root/etc/systemd/system/default.target.wants/vm-test.service"; }
ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"

# A fixed machine id: systemd does not then treat every boot as a first boot.
chroot "$root" systemd-machine-id-setup >/dev/null 2>&1 || true

cp "$(readlink -f "$root/vmlinuz")" "$out/vmlinuz"
cp "$(readlink -f "$root/initrd.img")" "$out/initrd.img"

# The root filesystem image, built from the directory (no loop device needed), with room
# for the tests' bundles and state.
used_mib=$(du -sm "$root" | cut -f1)
size_mib=$((used_mib + 3072))
rm -f "$out/rootfs.img"
mkfs.ext4 -q -L vmroot -d "$root" "$out/rootfs.img" "${size_mib}M"
rm -rf "$root"
echo "image: done ($((used_mib)) MiB of files in a ${size_mib} MiB disk)"
