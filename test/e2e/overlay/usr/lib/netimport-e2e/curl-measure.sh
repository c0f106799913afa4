#!/bin/sh
# The reference measurement: downloads netimport_e2e.curl=URL with curl alone, prints the time, powers off.
exec >/dev/ttyS0 2>&1
for arg in $(cat /proc/cmdline); do
    case "$arg" in netimport_e2e.curl=*) url="${arg#netimport_e2e.curl=}" ;; esac
done
/usr/lib/netimport-e2e/mark.sh curl-start
curl -sS --fail -o /dev/null -w 'NETIMPORT-E2E-CURL time_total=%{time_total} size=%{size_download}\n' "$url"
/usr/lib/netimport-e2e/mark.sh curl-end
# The same download written to tmpfs, as netimport writes /run/machines (for the report, not the verdict).
curl -sS --fail -o /run/curl-download -w 'NETIMPORT-E2E-CURL-TO-RUN time_total=%{time_total} size=%{size_download}\n' "$url"
rm -f /run/curl-download
systemctl poweroff --force --force
