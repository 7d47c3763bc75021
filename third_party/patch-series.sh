#!/usr/bin/env bash
# The fork is the pristine upstream crates (third_party/upstream.sha256, fetched from
# crates.io and checked) plus the numbered patches in third_party/patches/series, applied
# in order. The trees under third_party/ are what cargo builds; this script keeps them
# honest:
#
#   patch-series.sh check              the trees equal upstream + series (CI runs this)
#   patch-series.sh new NAME FILE [N]  the trees' changes not yet in the series become the
#                                      next patch, NNNN-NAME.patch (number N if given and
#                                      unused, else the highest + 1); FILE (or - for stdin) holds
#                                      its reason: a subject line, a blank line, why
#   patch-series.sh refresh            the last patch is made again from the trees (its
#                                      reason kept): for amending the newest patch
#   patch-series.sh amend N [PATH..]   the trees' changes not yet in the series (in the
#                                      given files, relative to third_party/, or all) are
#                                      folded into patch N (any patch; later ones must
#                                      still apply)
#   patch-series.sh apply DIR          writes upstream + series into DIR (for reading or
#                                      for starting over)
#
# Patches are made with `diff -ruN` over a/<crate> and b/<crate> and applied with
# `patch -p1 -F0`: the context must match exactly, so a patch that no longer fits the
# tree fails loudly instead of landing somewhere else.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
patches="$here/patches"
series="$patches/series"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/runtime-third-party"

die() { echo "patch-series.sh: $*" >&2; exit 1; }

# The crates named in upstream.sha256 ("<sha256>  <name>-<version>.crate"), as "name version".
crates() {
  sed -n 's/^[0-9a-f]\{64\}  \(.*\)-\([0-9][^-]*\)\.crate$/\1 \2/p' "$here/upstream.sha256"
}

# Downloads each pristine crate once into the cache and checks its digest.
fetch() {
  mkdir -p "$cache"
  local name version file
  while read -r name version; do
    file="$cache/$name-$version.crate"
    if [ ! -f "$file" ]; then
      curl -sSfL --retry 3 -o "$file.part" \
        "https://static.crates.io/crates/$name/$name-$version.crate" \
        || die "cannot download $name $version from crates.io"
      mv "$file.part" "$file"
    fi
  done < <(crates)
  (cd "$cache" && sha256sum --quiet -c "$here/upstream.sha256") \
    || die "a cached crate does not match third_party/upstream.sha256 (remove $cache and retry)"
}

# Unpacks the pristine crates into $1/<name> and applies the first $2 patches (all if empty).
build_tree() {
  local dir="$1" count="${2:-}" name version n=0 p
  fetch
  while read -r name version; do
    mkdir -p "$dir/$name"
    tar -xzf "$cache/$name-$version.crate" -C "$dir/$name" --strip-components=1
    rm -f "$dir/$name/.cargo_vcs_info.json"
  done < <(crates)
  [ -f "$series" ] || return 0
  while read -r p; do
    case "$p" in ''|'#'*) continue ;; esac
    if [ -n "$count" ] && [ "$n" -ge "$count" ]; then break; fi
    patch -p1 -F0 -s --no-backup-if-mismatch -d "$dir" < "$patches/$p" \
      || die "patch $p does not apply to upstream + the patches before it"
    n=$((n + 1))
  done < "$series"
}

patch_names() { [ -f "$series" ] && grep -v '^\s*\(#\|$\)' "$series" || true; }

# The difference from the crates under $1 to the crates under $2, as a patch body with
# a/<crate> and b/<crate> paths.
diff_between() {
  local old="$1" new="$2" name version view
  view="$(mktemp -d "$tmp/view.XXXX")"
  mkdir -p "$view/a" "$view/b"
  while read -r name version; do
    ln -s "$old/$name" "$view/a/$name"
    ln -s "$new/$name" "$view/b/$name"
    (cd "$view" && diff -ruN -x target -x '*.orig' -x '*.rej' "a/$name" "b/$name") || true
  done < <(crates) | sed -E 's#^(---|\+\+\+) ([^\t]*)\t.*#\1 \2#'
}

# Keeps only the files of a patch body (stdin) whose path, relative to third_party/, is
# one of the arguments (all files when there is none).
only_paths() {
  if [ "$#" -eq 0 ]; then cat; return; fi
  awk -v want="$(printf '%s\n' "$@")" '
    BEGIN { n = split(want, w, "\n"); for (i = 1; i <= n; i++) if (w[i] != "") keep["b/" w[i]] = 1 }
    /^diff -ruN / { on = ($NF in keep) }
    on { print }'
}

# The difference between the tree in $1 and the working trees, as a patch body.
diff_trees() { diff_between "$1" "$here"; }

# Writes patch file $1 with the header (reason) of $2 and the body $3.
write_patch() {
  { sed '/^---$/,$d' "$2"; echo "---"; echo "$3"; } > "$1.new"
  mv "$1.new" "$1"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

case "${1:-}" in
  check)
    build_tree "$tmp/t"
    body="$(diff_trees "$tmp/t")"
    if [ -n "$body" ]; then
      echo "$body" | head -60 >&2
      die "third_party differs from upstream + patches/series (above); make the change a patch: third_party/patch-series.sh new NAME REASON-FILE"
    fi
    echo "third_party: upstream ($(crates | tr '\n' ' ' | sed 's/ $//')) + $(patch_names | wc -l) patches == the tree"
    ;;
  new)
    name="${2:-}"; reason="${3:-}"
    [ -n "$name" ] && [ -n "$reason" ] || die "usage: new NAME REASON-FILE|- [NUMBER]"
    [[ "$name" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "NAME $name: use lower-case letters, digits and '-'"
    text="$(cat -- "$reason")"
    [ -n "$text" ] || die "the reason is empty: say why the patch exists"
    build_tree "$tmp/t"
    body="$(diff_trees "$tmp/t")"
    [ -n "$body" ] || die "the trees equal upstream + series: nothing to make a patch of"
    # Numbers name patches; the series file orders them. Merged branches keep the numbers
    # they were written with, so the series need not be sorted.
    last="$(patch_names | cut -c1-4 | sort -n | tail -1)"
    next=$((10#${last:-0} + 1))
    if [ -n "${4:-}" ]; then
      [[ "$4" =~ ^[0-9]{1,4}$ ]] || die "number $4: give at most 4 digits"
      next=$((10#$4))
      ! patch_names | cut -c1-4 | grep -qx "$(printf '%04d' "$next")" \
        || die "number $4 is already in the series"
    fi
    num="$(printf '%04d' "$next")"
    file="$num-$name.patch"
    { echo "$text"; echo "---"; echo "$body"; } > "$patches/$file"
    echo "$file" >> "$series"
    echo "wrote third_party/patches/$file"
    ;;
  refresh)
    last="$(patch_names | tail -1)"
    [ -n "$last" ] || die "the series is empty"
    count="$(($(patch_names | wc -l) - 1))"
    build_tree "$tmp/t" "$count"
    body="$(diff_trees "$tmp/t")"
    [ -n "$body" ] || die "the last patch would be empty: remove it from the series instead"
    write_patch "$patches/$last" "$patches/$last" "$body"
    echo "refreshed third_party/patches/$last"
    ;;
  amend)
    # Folds the trees' changes not yet in the series into patch N (not only the last):
    # upstream + patches 1..N, plus those changes, becomes the new patch N; the patches
    # after it must still apply exactly, or nothing is changed.
    want="${2:-}"
    [ -n "$want" ] || die "usage: amend NUMBER-or-FILE [PATH...]"
    shift 2
    only=("$@")
    target="$(patch_names | grep -m1 "^$want" || true)"
    [ -n "$target" ] || die "no patch $want in the series"
    index="$(patch_names | grep -n -m1 -x "$target" | cut -d: -f1)"
    build_tree "$tmp/full"
    pending="$(diff_trees "$tmp/full" | only_paths "${only[@]}")"
    [ -n "$pending" ] || die "no change outside the series (in ${only[*]:-the trees}) to fold into $target"
    build_tree "$tmp/before" "$((index - 1))"
    build_tree "$tmp/after" "$index"
    echo "$pending" | patch -p1 -s --no-backup-if-mismatch -d "$tmp/after" \
      || die "the pending changes do not apply on top of $target: make them a new patch instead"
    cp "$patches/$target" "$tmp/old.patch"
    write_patch "$patches/$target" "$tmp/old.patch" "$(diff_between "$tmp/before" "$tmp/after")"
    rm -rf "$tmp/check"
    if ! (build_tree "$tmp/check") 2>"$tmp/err" \
      || [ -n "$(diff_trees "$tmp/check" | only_paths "${only[@]}")" ]; then
      cp "$tmp/old.patch" "$patches/$target"
      cat "$tmp/err" >&2
      die "after amending $target the later patches no longer give the trees; left unchanged"
    fi
    echo "amended third_party/patches/$target"
    ;;
  apply)
    [ -n "${2:-}" ] || die "usage: apply DIR"
    mkdir -p "$2"
    build_tree "$2"
    echo "upstream + series written to $2"
    ;;
  *)
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
