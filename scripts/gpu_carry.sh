#!/usr/bin/env bash
# Download the wheels scripts/gpu_check.sh installs on a GPU machine that cannot reach a
# package registry (`make gpu-carry`): every pin of scripts/gpu_carry.txt, for CPython 3.12 on
# manylinux x86_64 (GPU_CARRY_PYTHON_VERSION), without dependencies.
#
# Usage: scripts/gpu_carry.sh [DEST]              (default .carry; never committed)
#        scripts/gpu_carry.sh --split FILE DIR    (split one file into DIR, as below)
#
# A file over GPU_CARRY_PIECE (40M) is split into FILE.part-aa, -ab, ... beside FILE.sha256,
# which gpu_check.sh joins and verifies; the whole file is deleted. The wheels and pieces are
# then shared out into DEST/1, DEST/2, ... of at most GPU_CARRY_BUNDLE_MIB (56) MiB each: the
# device tool moves at most 64 MiB a call, the working tree included, so each bundle travels in
# a call of its own (see the top of scripts/gpu_check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pins.sh
PIECE="${GPU_CARRY_PIECE:-40M}"
PYVER="${GPU_CARRY_PYTHON_VERSION:-3.12}" # the GPU machine's python3
BUNDLE_MIB="${GPU_CARRY_BUNDLE_MIB:-56}"
PINS=scripts/gpu_carry.txt

die() {
  echo "gpu_carry: $*" >&2
  exit 1
}

# split FILE DIR: FILE's pieces and its sha256 into DIR; FILE itself is left alone.
split_file() {
  local file="$1" dir="$2" name
  name="$(basename "$file")"
  mkdir -p "$dir"
  (cd "$(dirname "$file")" && sha256sum "$name") >"$dir/$name.sha256"
  split -b "$PIECE" -a 2 "$file" "$dir/$name.part-"
}

if [ "${1:-}" = "--split" ]; then
  [ $# -eq 3 ] || die "usage: $0 --split FILE DIR"
  [ -f "$2" ] || die "no such file: $2"
  split_file "$2" "$3"
  exit 0
fi

DEST="${1:-.carry}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
DL="$DEST/download"
rm -rf "$DEST"
mkdir -p "$DL"
echo "gpu_carry: downloading the pins of $PINS into $DL"
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$DL" -r "$PINS"

# Every pin must have exactly one wheel: two versions of one name stop the install there.
shopt -s nocaseglob nullglob
while read -r name version line; do
  found=("$DL/${name//[-.]/_}-$version-"*.whl)
  [ ${#found[@]} -eq 1 ] || die "$line: ${#found[@]} wheels downloaded, want 1"
done < <(pins "$PINS")

# Pieces first, then whole wheels, each into the first bundle with room: big items first
# leave the small wheels to fill the gaps.
mkdir -p "$DL/pieces"
limit=$(numfmt --from=iec "$PIECE")
for whl in "$DL"/*.whl; do
  if [ "$(stat -c %s "$whl")" -gt "$limit" ]; then
    split_file "$whl" "$DL/pieces"
    rm -f "$whl"
  fi
done
cap=$((BUNDLE_MIB * 1024 * 1024))
declare -a used=()
place() {
  local file="$1" kind="$2" size i
  size=$(stat -c %s "$file")
  [ "$size" -le "$cap" ] || die "$(basename "$file") ($size bytes) is larger than a bundle"
  for ((i = 0; ; i++)); do
    if [ "$((${used[i]:-0} + size))" -le "$cap" ]; then
      used[i]=$((${used[i]:-0} + size))
      mkdir -p "$DEST/$((i + 1))/$kind"
      mv "$file" "$DEST/$((i + 1))/$kind/"
      if [ "$kind" = pieces ]; then  # each bundle with a piece also holds the checksum
        cp -f "${file%.part-*}.sha256" "$DEST/$((i + 1))/pieces/"
      fi
      return
    fi
  done
}
for piece in "$DL"/pieces/*.part-*; do place "$piece" pieces; done
for whl in "$DL"/*.whl; do place "$whl" wheels; done
rm -rf "$DL"

# What travels with each bundle: the tracked tree (and untracked files git does not ignore).
tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null |
  tail -1 | cut -f1) || true
tree="${tree:-0}"
total=0
for dir in "$DEST"/*/; do
  size=$(du -sb "$dir" | cut -f1)
  total=$((total + size))
  with=$(((size + tree) / 1048576))
  echo "gpu_carry: ${dir%/} $((size / 1048576)) MiB ($with MiB with the working tree)"
  [ "$((size + tree))" -le $((64 * 1048576)) ] || die "${dir%/} and the tree exceed 64 MiB"
done
n=$(find "$DEST" -mindepth 1 -maxdepth 1 -type d | wc -l)
echo "gpu_carry: $((total / 1048576)) MiB in $n bundles under $DEST; on the device tool run" \
  "GPU_CHECK_STEP=stash for each but the last, then the check (scripts/gpu_check.sh, top)"
