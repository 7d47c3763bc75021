#!/usr/bin/env bash
# Runs runc's own integration suite (tests/integration of the runc version Debian installs,
# v1.1.5; BATS) against a runtime binary, offline, and prints ok / not ok / skipped counts
# and the names of the failing tests. Not part of hack/test.sh: it takes ~10 minutes per
# runtime and measures parity with runc rather than guarding a change.
#
# usage: sudo hack/runc-bats.sh RUNTIME_BINARY [BATS_FILE...]
#        sudo hack/runc-bats.sh --diff REFERENCE.tap CANDIDATE.tap
#   RUNTIME_BINARY  what the suite drives as $RUNC (e.g. /usr/sbin/runc, target/debug/runtime)
#   BATS_FILE       only these files of tests/integration (e.g. kill.bats); default all
#   --diff          names the tests that pass in REFERENCE and fail in CANDIDATE
# env: RUNC_BATS_WORK  cache of source, helpers, images and results (/var/tmp/runc-bats)
#
# What it prepares (once, cached in RUNC_BATS_WORK):
# - the suite: Debian's runc source package (`apt-get source`, through a private sources
#   list with deb-src lines: the host's apt configuration is not changed);
# - its helpers (recvtty, sd-helper, seccompagent) built with Debian's golang-go in GOPATH
#   mode against the golang-*-dev packages runc's Build-Depends name (the Go module proxy
#   is not reachable, and Debian's source has no vendor/ directory);
# - the images the suite would download: a busybox rootfs from busybox-static and a
#   Debian rootfs from debootstrap (minbase), as testdata/{busybox,debian}-amd64.tar.xz.
set -euo pipefail

die() { echo "runc-bats: $*" >&2; exit 1; }

# --- results: TAP → counts and names --------------------------------------------------
summarise() {
  local tap=$1
  local ok notok skipped
  ok=$(grep -cE '^ok [0-9]+ ' "$tap" | tr -d ' ' || true)
  skipped=$(grep -cE '^ok [0-9]+ .*# skip' "$tap" || true)
  notok=$(grep -cE '^not ok [0-9]+ ' "$tap" || true)
  echo "runc-bats: $((ok - skipped)) ok, $notok not ok, $skipped skipped ($tap)"
  if [ "$notok" -gt 0 ]; then
    echo "runc-bats: failing tests:"
    sed -nE 's/^not ok [0-9]+ (.*)$/  \1/p' "$tap"
  fi
}

names() { # the names of the tests with a given result ("ok" passes without skip, "not ok")
  local tap=$1 want=$2
  if [ "$want" = ok ]; then
    grep -E '^ok [0-9]+ ' "$tap" | grep -v '# skip' | sed -E 's/^ok [0-9]+ //' | sort
  else
    sed -nE 's/^not ok [0-9]+ (.*)$/\1/p' "$tap" | sort
  fi
}

if [ "${1:-}" = --diff ]; then
  ref=${2:?usage: runc-bats.sh --diff REFERENCE.tap CANDIDATE.tap}
  cand=${3:?usage: runc-bats.sh --diff REFERENCE.tap CANDIDATE.tap}
  both=$(comm -12 <(names "$ref" ok) <(names "$cand" "not ok"))
  echo "runc-bats: $(printf '%s' "$both" | grep -c . || true) tests pass with $(basename "$ref") and fail with $(basename "$cand"):"
  printf '%s\n' "$both" | sed '/^$/d; s/^/  /'
  rev=$(comm -12 <(names "$cand" ok) <(names "$ref" "not ok"))
  echo "runc-bats: $(printf '%s' "$rev" | grep -c . || true) tests pass with $(basename "$cand") and fail with $(basename "$ref")"
  printf '%s\n' "$rev" | sed '/^$/d; s/^/  /'
  exit 0
fi

runtime=${1:?usage: runc-bats.sh RUNTIME_BINARY [BATS_FILE...] | --diff REF.tap CAND.tap}
shift
[ "$(id -u)" -eq 0 ] || die "the suite creates containers, mounts and cgroups: run as root"
runtime=$(readlink -f "$runtime")
[ -x "$runtime" ] || die "$runtime is not an executable"

work=${RUNC_BATS_WORK:-/var/tmp/runc-bats}
mkdir -p "$work"
arch=$(dpkg --print-architecture)

# --- tools ------------------------------------------------------------------------------
need=(bats golang-go debootstrap dpkg-dev jq gawk gcc libseccomp-dev busybox-static xz-utils iproute2 util-linux runc bsdutils criu)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- the suite: Debian's runc source package ----------------------------------------------
version=$(dpkg-query -W -f='${Version}' runc)
src="$work/src/runc-$version"
if [ ! -d "$src/tests/integration" ]; then
  echo "runc-bats: fetching runc $version source (Debian)"
  apt_dir="$work/apt"
  mkdir -p "$apt_dir/lists/partial" "$work/src"
  {
    for suite in bookworm bookworm-updates; do
      echo "deb-src http://deb.debian.org/debian $suite main"
    done
    echo "deb-src http://deb.debian.org/debian-security bookworm-security main"
  } > "$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only "runc=$version" >/dev/null)
  rm -rf "$src.tmp"
  dpkg-source -x "$work/src/runc_${version#*:}.dsc" "$src.tmp" >/dev/null
  mv "$src.tmp" "$src"
fi
integration="$src/tests/integration"

# --- helpers, built offline against Debian's Go packages -----------------------------------
gopath="$work/gopath"
if [ ! -x "$src/contrib/cmd/seccompagent/seccompagent" ]; then
  # The golang-*-dev packages of runc's Build-Depends (they install under /usr/share/gocode).
  mapfile -t godeps < <(sed -n '/^Build-Depends:/,/^[A-Z]/p' "$src/debian/control" |
    grep -oE 'golang-[a-z0-9.-]+-dev' | sort -u)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${godeps[@]}" >/dev/null
  mkdir -p "$gopath/src/github.com/opencontainers"
  ln -sfn "$src" "$gopath/src/github.com/opencontainers/runc"
  for cmd in recvtty sd-helper seccompagent; do
    (cd "$gopath/src/github.com/opencontainers/runc" &&
      GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOCACHE="$work/gocache" \
        go build -tags seccomp -o "contrib/cmd/$cmd/$cmd" "./contrib/cmd/$cmd")
  done
fi

# --- images, offline ------------------------------------------------------------------------
testdata="$integration/testdata"
busybox_tar="$testdata/busybox-$arch.tar.xz"
if [ ! -s "$busybox_tar" ]; then
  echo "runc-bats: making the busybox image from busybox-static"
  root=$(mktemp -d)
  chmod 755 "$root" # the image's / (mktemp made it 0700: no other user could reach /bin)
  # No proc/ or sys/, as in docker's image: the runtime makes the mount points (mask.bats
  # replaces them with symlinks to see them refused).
  mkdir -p "$root"/{bin,etc,dev,tmp,root,home,var/spool/mail,var/www,usr/sbin}
  chmod 1777 "$root/tmp"
  chmod 700 "$root/root"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  # The accounts of docker's busybox image, which some tests name.
  cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
  cat > "$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
EOF
  tar -C "$root" --numeric-owner -cJf "$busybox_tar.tmp" .
  mv "$busybox_tar.tmp" "$busybox_tar"
  rm -rf "$root"
fi
debian_tar="$testdata/debian-$arch.tar.xz"
if [ ! -s "$debian_tar" ]; then
  echo "runc-bats: making the Debian image with debootstrap (minbase)"
  root="$work/debian-rootfs"
  [ -x "$root/bin/sh" ] || { rm -rf "$root"; debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null; }
  tar -C "$root" --numeric-owner -cJf "$debian_tar.tmp" .
  mv "$debian_tar.tmp" "$debian_tar"
fi

# --- run --------------------------------------------------------------------------------------
mkdir -p "$work/results"
tap="$work/results/$(basename "$runtime")-$(date +%Y%m%dT%H%M%S).tap"
files=()
if [ "$#" -gt 0 ]; then
  for f in "$@"; do files+=("$integration/$f"); done
else
  files=("$integration"/*.bats)
fi
echo "runc-bats: running ${#files[@]} files against $runtime (TAP in $tap)"
# The suite's bundles come from `runc spec` (terminal: true) and `run` them in the
# foreground, so it needs a controlling terminal: script(1) gives it one.
quoted=$(printf '%q ' "${files[@]}")
set +e
# A test that hangs (a runtime waiting forever) is failed after BATS_TEST_TIMEOUT seconds.
(cd "$src" && RUNC="$runtime" BATS_TEST_TIMEOUT="${BATS_TEST_TIMEOUT:-120}" \
  script -qec "bats --tap $quoted" /dev/null </dev/null) 2>&1 |
  tr -d '\r' > "$tap"
set -e
summarise "$tap"
