#!/bin/sh
# Prints one timestamped marker line on the serial console for the boot tests.
read -r up _ </proc/uptime
echo "NETIMPORT-E2E-MARK $* uptime=$up" >/dev/ttyS0
