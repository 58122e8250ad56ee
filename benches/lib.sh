# Shared by the bench scripts (sourced, not run).

# Prints the byte count of a size such as 10GiB, 512MiB, 64KiB or 1234.
size_bytes() {
  local t="${1,,}" n unit
  n="${t%%[!0-9]*}"
  unit="${t#"$n"}"
  [[ -n "$n" ]] || { echo "bad size $1" >&2; return 1; }
  case "$unit" in
    "" | b) echo "$n" ;;
    k | kib) echo $((n << 10)) ;;
    m | mib) echo $((n << 20)) ;;
    g | gib) echo $((n << 30)) ;;
    *) echo "bad size $1" >&2; return 1 ;;
  esac
}

# Fails unless directory $1 has room for a multipart upload of $2 bytes: the parts, the completed
# temporary object and the final copy exist at once, so 3x the size plus 1 GiB of slack.
check_disk() {
  local need_kb=$((3 * $2 / 1024 + (1 << 20))) free_kb
  free_kb="$(df -Pk "$1" | awk 'NR == 2 { print $4 }')"
  if ((free_kb < need_kb)); then
    echo "need $((need_kb >> 20)) GiB free under $1 for a $(($2 >> 20)) MiB object, have $((free_kb >> 20)) GiB" >&2
    return 1
  fi
}
