#!/usr/bin/env bash
# Makes a busybox image offline from Debian's busybox-static and imports it into an
# imgtool store: a tar of /bin/busybox with relative applet links, /etc/passwd and
# /etc/group, imported with `imgtool import` as NAME (running sh).
# usage: hack/make-busybox-image.sh IMGTOOL STORE NAME
set -euo pipefail
imgtool=${1:?usage: make-busybox-image.sh IMGTOOL STORE NAME}
store=${2:?usage: make-busybox-image.sh IMGTOOL STORE NAME}
name=${3:?usage: make-busybox-image.sh IMGTOOL STORE NAME}
[ -x /bin/busybox ] || { echo "make-busybox-image: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,proc,sys,dev,tmp,root}
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
tar -C "$root" --numeric-owner -cf - . | "$imgtool" --store "$store" import -q -c 'CMD ["sh"]' - "$name" >/dev/null
