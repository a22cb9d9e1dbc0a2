# Sourced by gpu_carry.sh and gpu_check.sh: the one reader of scripts/gpu_carry.txt.
# pins FILE: "name version spec" for every `name==version` line (comments and blanks skipped).
pins() {
  local line
  while read -r line; do
    line="${line%%#*}"
    line="${line//[[:space:]]/}"
    [ -n "$line" ] || continue
    echo "${line%%==*} ${line#*==} $line"
  done <"$1"
}
