#!/usr/bin/env bash
# Runs every Go fuzz target in the repository.
#
#   scripts/fuzz.sh                 brief run (CI): 20000 inputs per target
#   scripts/fuzz.sh -long           long run: 5000000 inputs per target
#   FUZZTIME=200000x scripts/fuzz.sh [packages…]   custom budget and packages (default ./...)
#
# Budgets are input counts, not durations: duration budgets trip a Go 1.26
# fuzzing bug (go.dev/issue/75804). A failing input is saved by Go under the
# package's testdata/fuzz/<Target>/ and the script exits non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-20000x}"
if [ "${1:-}" = "-long" ]; then
  fuzztime="${FUZZTIME:-5000000x}"
  shift
fi
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./...)

list=$(go test -list '^Fuzz' "${pkgs[@]}" 2>&1)
list_rc=$?
# Output: target names, then "ok  <package> <time>" for their package.
targets=$(printf '%s\n' "$list" | awk '
  /^Fuzz[A-Za-z0-9_]*$/ { names[n++] = $0; next }
  /^ok[ \t]/ { for (i = 0; i < n; i++) print $2, names[i]; n = 0; next }
  { n = 0 }')
if [ $list_rc -ne 0 ]; then
  printf '%s\n' "$list" | grep -v '^Fuzz' | grep -v '^ok' | grep -v '^?' >&2
  echo "fuzz.sh: listing fuzz targets failed (build errors above); their targets cannot run" >&2
fi
if [ -z "$targets" ]; then
  echo "fuzz.sh: no fuzz targets found" >&2
  exit 1
fi

failed=()
count=0
start=$SECONDS
while read -r pkg name; do
  count=$((count + 1))
  t0=$SECONDS
  if out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 100x "$pkg" 2>&1); then
    printf 'ok    %-40s %-28s %ds\n' "$pkg" "$name" $((SECONDS - t0))
  else
    printf 'FAIL  %-40s %-28s %ds\n' "$pkg" "$name" $((SECONDS - t0))
    printf '%s\n' "$out" | grep -v '^fuzz: elapsed' | tail -40
    failed+=("$pkg $name")
  fi
done <<< "$targets"

echo "fuzz.sh: $count targets, ${fuzztime} each, $((SECONDS - start))s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
[ $list_rc -eq 0 ] || exit 1
