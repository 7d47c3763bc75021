#!/usr/bin/env bash
# Installs the Debian packages the build, the tests, the demo and the benchmarks need.
# Idempotent: packages already present are skipped by apt-get. A fresh machine has none of them.
set -euo pipefail

PACKAGES=(
  # build: libcontainer links libseccomp; k8s-cri's build script (CRI tests) runs protoc
  pkg-config libseccomp-dev protobuf-compiler
  # the seccomp spec-tests build a static probe (gcc -static against glibc's libc.a)
  gcc libc6-dev
  # test images and runtime tests
  busybox-static jq iproute2 util-linux procps
  # peers the tests and benchmarks compare against
  runc crun skopeo umoci
  # bridge networks of imgtool bundles: the CNI plugins their hooks run, and iptables
  # for the network-wide NAT/FORWARD rules and the portmap plugin
  containernetworking-plugins iptables curl
  # the static syscall probe the seccomp tests build (cc -static)
  gcc libc6-dev
  # real clients of the runtime
  containerd podman conmon uidmap bsdutils docker.io criu
  # the local registry the image tests start on 127.0.0.1
  docker-registry apache2-utils
  # self-signed certificates and token signing for the HTTPS and bearer-token registries
  openssl
  # benchmarks
  hyperfine time strace bc
  # hack/vm-test.sh: a Debian 12 guest (systemd, pure cgroup v2) built with debootstrap and
  # booted with QEMU (KVM when it works, software emulation otherwise)
  debootstrap qemu-system-x86
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Packages may start system services (docker-registry on :5000, docker, containerd); the
# tests start private instances of their own, so stop any system ones.
if command -v service >/dev/null 2>&1; then
  for svc in docker-registry docker containerd; do service "$svc" stop >/dev/null 2>&1 || true; done
fi
# Only the packaged service's instance (its config under /etc): never a test's private registry.
pkill -f "docker-registry serve /etc/docker/registry/config.yml" 2>/dev/null || true
echo "install-deps: all packages present"
