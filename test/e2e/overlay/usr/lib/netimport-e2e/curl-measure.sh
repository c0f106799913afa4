#!/bin/sh
# The reference measurement: downloads netimport_e2e.curl=URL with curl alone, prints the time, powers off.
exec >/dev/ttyS0 2>&1
for arg in $(cat /proc/cmdline); do
    case "$arg" in netimport_e2e.curl=*) url="${arg#netimport_e2e.curl=}" ;; esac
done
/usr/lib/netimport-e2e/mark.sh curl-start
curl -sS --fail -o /dev/null -w 'NETIMPORT-E2E-CURL time_total=%{time_total} size=%{size_download}\n' "$url"
/usr/lib/netimport-e2e/mark.sh curl-end
# The same download written to a tmpfs, as netimport writes its images (for the report, not the verdict);
# its own tmpfs, since /run holds only 20 % of the memory.
mkdir -p /run/e2e-curl && mount -t tmpfs -o size=90% tmpfs /run/e2e-curl
curl -sS --fail -o /run/e2e-curl/download -w 'NETIMPORT-E2E-CURL-TO-RUN time_total=%{time_total} size=%{size_download}\n' "$url"
umount /run/e2e-curl
# And hashed on the way, as netimport hashes what it verifies (sha256 under TCG emulation is not free).
read -r t0 _ </proc/uptime
curl -sS --fail "$url" | sha256sum >/dev/null
read -r t1 _ </proc/uptime
echo "NETIMPORT-E2E-CURL-SHA256 from=$t0 to=$t1"
systemctl poweroff --force --force
