#!/bin/sh
# posagent package: runs after the files are removed (deb postrm, rpm %postun).
#   deb: $1 = remove, purge, upgrade, ...
#   rpm: $1 = 0 on removal, 1 or more on an upgrade
# The ledger (/var/lib/posagent) is never removed, not even by a purge: it
# holds sales and balances that may not have reached HQ yet. The posagent
# account stays too, so a reinstall finds the ledger owned by it.
set -e

case "$1" in
  remove|purge|0) ;;
  *) exit 0 ;;
esac

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
rm -f /etc/udev/rules.d/99-posagent-readers.rules # written by postinst from the config's readers
if command -v udevadm >/dev/null 2>&1 && [ -d /run/udev ]; then
  udevadm control --reload-rules || true
fi
if [ -d /var/lib/posagent ]; then
  echo "posagent: removed; the ledger in /var/lib/posagent and the posagent account are kept"
fi
exit 0
