#!/usr/bin/env bash
# Builds the release runtime and imgtool as static, non-PIE executables (glibc and
# libseccomp linked in): no dynamic loader, no shared-library mapping and no relocations
# at start-up, which the runtime pays twice per create/run/exec (it re-executes itself
# from a read-only mount, see runtime/src/container/exe_protect.rs). Prints the runtime's
# path, then imgtool's. hack/install.sh installs these; the benchmarks and CI's smoke
# tests use what it installed.
# `--target` is required: without it RUSTFLAGS would also apply to proc-macros, which
# cannot be linked statically.
# imgtool resolves registry host names with glibc's getaddrinfo, which a static glibc
# still loads NSS modules for (files, dns) from the host at run time: they must be the
# ones of the glibc it was built with, which holds when it is built on the machine it is
# installed on (hack/install.sh does both).
# usage: hack/build-static.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
[ -e /usr/lib/x86_64-linux-gnu/libseccomp.a ] || { echo "build-static: libseccomp.a missing (apt-get install libseccomp-dev)" >&2; exit 1; }
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
  LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu \
  cargo build --release -q -p runtime -p imgtool --target "$target" >&2
echo "$PWD/target/$target/release/runtime"
echo "$PWD/target/$target/release/imgtool"
