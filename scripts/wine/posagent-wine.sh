#!/usr/bin/env bash
# Runs the Windows build of posagent under Wine, by hand, the way
# cmd/posagent/wine_test.go does in the test suite:
#
#   scripts/wine/posagent-wine.sh version
#   scripts/wine/posagent-wine.sh run --config 'Z:\tmp\till\posagent.yaml'
#
# It cross-compiles posagent.exe, builds the test-only ProcessPrng shim
# (testdata/wine; Wine 8's bcryptprimitives.dll lacks it and Go needs it),
# creates a Wine prefix once (POSAGENT_WINEPREFIX, default
# ${XDG_CACHE_HOME:-~/.cache}/posagent-wine) with the shim in its system32,
# and runs the exe with the arguments given. Linux paths are Z:\… inside.
# Ctrl+C stops the agent cleanly (Wine delivers it as CTRL_C_EVENT).
# Needs: apt-get install wine wine64 gcc-mingw-w64-x86-64.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
export PATH=/usr/local/go/bin:$PATH
prefix="${POSAGENT_WINEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/posagent-wine}"
out="$prefix.build"
mkdir -p "$out"

for tool in wine wineserver x86_64-w64-mingw32-gcc; do
  command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install wine wine64 gcc-mingw-w64-x86-64" >&2; exit 1; }
done

(cd "$root" && GOOS=windows GOARCH=amd64 CGO_ENABLED=0 go build -o "$out/posagent.exe" ./cmd/posagent)
x86_64-w64-mingw32-gcc -shared -O2 -s -o "$out/bcryptprimitives.dll" \
  "$root/testdata/wine/bcryptprimitives.c" "$root/testdata/wine/bcryptprimitives.def" -ladvapi32

export WINEPREFIX="$prefix" WINEDEBUG="${WINEDEBUG:--all}"
export WINEDLLOVERRIDES="bcryptprimitives=n;mscoree,mshtml="
if [ ! -d "$prefix/drive_c/windows/system32" ]; then
  echo "creating the Wine prefix $prefix (wineboot, ~20 s)" >&2
  timeout 240 wine wineboot --init >/dev/null 2>&1
  timeout 60 wineserver -w
fi
cp "$out/bcryptprimitives.dll" "$prefix/drive_c/windows/system32/bcryptprimitives.dll"
exec wine "$out/posagent.exe" "$@"
