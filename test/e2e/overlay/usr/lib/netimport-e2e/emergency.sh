#!/bin/sh
# Replaces the emergency shell in test initrds: say why on the serial console and power off at once,
# so a failing boot ends in seconds instead of at the test's timeout.
exec >/dev/ttyS0 2>&1
read -r up _ </proc/uptime
echo "NETIMPORT-E2E-EMERGENCY uptime=$up"
systemctl --failed --no-pager --no-legend --plain | sed 's/^/NETIMPORT-E2E-FAILED /'
echo "NETIMPORT-E2E-JOURNAL-BEGIN"
journalctl -b --no-pager -o cat -n 40 -u 'netimport-*' -u 'systemd-networkd*' -u 'sysroot.mount' -u 'initrd-root-*'
echo "NETIMPORT-E2E-JOURNAL-END"
systemctl poweroff --force --force || echo o >/proc/sysrq-trigger
