#!/bin/sh
# posagent package: runs before the files are removed (deb prerm, rpm %preun).
#   deb: $1 = remove, upgrade, deconfigure or failed-upgrade
#   rpm: $1 = 0 on removal, 1 or more on an upgrade
# An upgrade leaves the agent running; the new package's postinstall
# restarts it on the new binary.
set -e

case "$1" in
  remove|0) ;;
  *) exit 0 ;;
esac

if command -v systemctl >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    # The agent closes the ledger before it exits (TimeoutStopSec=30s).
    systemctl stop posagent.service || true
  fi
  systemctl disable posagent.service >/dev/null 2>&1 || true
fi
exit 0
