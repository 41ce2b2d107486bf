#!/bin/sh
# posagent package: runs once the files are in place (deb postinst, rpm %post).
#   deb: $1 = configure, $2 = the version upgraded from (empty on a first install)
#   rpm: $1 = 1 on a first install, 2 or more on an upgrade
# Nothing here starts the agent on a first install: the config needs the
# store, the till and the readers first. Nothing fails where systemd or udev
# is not running (containers, chroots, image builds): they are only told.
set -e

case "$1" in
  configure) [ -z "$2" ] && first=yes || first=no ;;
  1) first=yes ;;
  [0-9]*) first=no ;;
  *) exit 0 ;; # deb abort-upgrade, abort-remove, ...
esac

# The service account (its group is the one the udev rules give readers to).
if ! getent passwd posagent >/dev/null 2>&1; then
  if ! { command -v systemd-sysusers >/dev/null 2>&1 && systemd-sysusers /usr/lib/sysusers.d/posagent.conf; }; then
    useradd --system --user-group --home-dir /var/lib/posagent --no-create-home \
      --shell /usr/sbin/nologin --comment "posagent till agent" posagent
  fi
fi

# The ledger directory: created once, never changed afterwards (an upgrade
# leaves the ledger, the generated keys and the API token as they are).
if [ ! -d /var/lib/posagent ]; then
  install -d -o posagent -g posagent -m 0750 /var/lib/posagent
fi

# The config holds the API token and HQ credentials: root writes it, the
# service's group reads it. The package ships it root:root; a conffile the
# package replaced comes back root:root too, so this runs on every upgrade.
cfg=/etc/posagent/posagent.yaml
if [ -f "$cfg" ] && [ "$(stat -c %G "$cfg")" = root ]; then
  chgrp posagent "$cfg"
  chmod 0640 "$cfg"
fi

# Rules for the configured readers, so the service account may open them.
[ -f "$cfg" ] && { /usr/bin/posagent devices udev --config "$cfg" >/etc/udev/rules.d/99-posagent-readers.rules.tmp && mv /etc/udev/rules.d/99-posagent-readers.rules.tmp /etc/udev/rules.d/99-posagent-readers.rules || { rm -f /etc/udev/rules.d/99-posagent-readers.rules.tmp; echo "posagent: no udev rules for the readers; fix $cfg, then: posagent devices udev > /etc/udev/rules.d/99-posagent-readers.rules" >&2; }; }

if command -v udevadm >/dev/null 2>&1 && [ -d /run/udev ]; then
  udevadm control --reload-rules || true
  udevadm trigger --action=add --subsystem-match=tty --subsystem-match=hidraw \
    --subsystem-match=usb --subsystem-match=input || true
fi

if command -v systemctl >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
  fi
  if [ "$first" = yes ]; then
    # Works offline too (it only creates the symlink), so an image built in
    # a container starts the agent at its first boot.
    systemctl enable posagent.service >/dev/null 2>&1 ||
      echo "posagent: could not enable posagent.service; run: systemctl enable posagent" >&2
  elif [ -d /run/systemd/system ]; then
    # A running agent moves to the new binary; a stopped one stays stopped.
    systemctl try-restart posagent.service || true
  fi
fi

if [ "$first" = yes ]; then
  echo "posagent: installed and enabled, not started. Edit $cfg, check it with"
  echo "  posagent config validate --config $cfg"
  echo "then start it: systemctl start posagent"
fi
exit 0
