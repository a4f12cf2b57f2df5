#!/usr/bin/env bash
# fetch-images.sh puts real test photos into testdata/images/ (git-ignored)
# from Debian's python3-skimage package: it downloads the .deb with
# apt-get download, unpacks it with dpkg -x into a temporary directory and
# copies the photos out. Nothing is installed. Safe to run again: when every
# photo is already there it does nothing. See testdata/README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/images"

# Packages that may hold skimage/data/astronaut.png; the first that does wins.
candidates=(python3-skimage python3-skimage-lib)
datadir="usr/lib/python3/dist-packages/skimage/data"
# Photos to copy; "a|b" takes a, or b when the package lacks a.
photos=(
  astronaut.png
  camera.png
  chelsea.png
  coffee.png
  "motorcycle_left.png|motorcycle_right.png|rocket.jpg"
  rocket.jpg
  truncated.jpg
)

log() { printf 'fetch-images: %s\n' "$*"; }

# have_all succeeds when, for every entry, one of its alternatives is in dest.
have_all() {
  local entry alt found
  for entry in "${photos[@]}"; do
    found=
    IFS='|' read -ra alts <<<"$entry"
    for alt in "${alts[@]}"; do
      [[ -s "$dest/$alt" ]] && found=1 && break
    done
    [[ -n "$found" ]] || return 1
  done
}

if have_all; then
  log "all photos already in $dest; nothing to do"
  exit 0
fi

for tool in apt-get apt-cache dpkg dpkg-deb; do
  command -v "$tool" >/dev/null || { log "needs $tool (a Debian-based system)"; exit 1; }
done

# as_root runs a command as root: directly, or through sudo when available.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    log "needs root or sudo to run: $*"
    exit 1
  fi
}

# apt-get download needs the package lists; fetch them when apt knows none
# of the candidates.
known=
for pkg in "${candidates[@]}"; do
  if apt-cache show "$pkg" >/dev/null 2>&1; then known=1; break; fi
done
if [[ -z "$known" ]]; then
  log "apt package lists missing; running apt-get update"
  as_root apt-get update -qq >/dev/null
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# As root, apt drops to the _apt user to download; let it write here.
if [[ $EUID -eq 0 ]] && id _apt >/dev/null 2>&1; then
  chown _apt "$tmp"
fi

src=
for pkg in "${candidates[@]}"; do
  log "downloading $pkg"
  (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null) || { log "  cannot download $pkg"; continue; }
  debs=("$tmp/$pkg"_*.deb)
  deb="${debs[0]}"
  [[ -f "$deb" ]] || continue
  # grep reads to the end (no -q): an early exit would fail dpkg under pipefail.
  if dpkg -c "$deb" | grep "$datadir/astronaut.png\$" >/dev/null; then
    log "  $(basename "$deb") holds $datadir"
    mkdir -p "$tmp/x"
    dpkg -x "$deb" "$tmp/x"
    src="$tmp/x/$datadir"
    break
  fi
  log "  $(basename "$deb") holds no skimage data images"
done
if [[ -z "$src" ]]; then
  log "no package among ${candidates[*]} holds skimage/data/astronaut.png"
  exit 1
fi

mkdir -p "$dest"
copied=0
for entry in "${photos[@]}"; do
  IFS='|' read -ra alts <<<"$entry"
  done_entry=
  for alt in "${alts[@]}"; do
    if [[ -s "$dest/$alt" ]]; then
      log "kept    $alt (already there)"
      done_entry=1
      break
    fi
    if [[ -f "$src/$alt" ]]; then
      cp "$src/$alt" "$dest/$alt"
      log "copied  $alt ($(stat -c %s "$dest/$alt") bytes)"
      copied=$((copied + 1))
      done_entry=1
      break
    fi
  done
  [[ -n "$done_entry" ]] || log "missing ${alts[0]}: not in the package"
done
log "$copied photo(s) copied into $dest"
