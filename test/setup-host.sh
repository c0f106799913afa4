#!/usr/bin/env bash
# Installs everything the build, the tests and the demo need on a fresh Debian 12 machine (run as root).
# Idempotent: packages already present are skipped, npm ci runs only when the lock file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  binutils
  # runtime tests: native tools to compare with, loop devices, HTTP server, signatures
  curl gzip zstd xz-utils bzip2 lbzip2 tar util-linux fdisk e2fsprogs gpg gpg-agent nginx-light systemd-container
  # DDI and dm-verity tests: veritysetup format for hash trees, dmsetup, openssl for root hash signatures
  cryptsetup-bin dmsetup openssl
  # lazy root: nbd-client (the lazy daemon's tool kit copies it; the NBD server is tested against it and qemu-io)
  nbd-client
  # tar sink tests and the real root of the boot tests: extended attributes, ACLs, file capabilities
  attr acl libcap2-bin
  # boot tests: chroots, kernels, initrds, UEFI
  qemu-system-x86 qemu-utils ovmf mmdebstrap busybox-static cpio dosfstools mtools erofs-utils squashfs-tools
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# nginx-light starts a default server on port 80 at install; the tests start their own instances.
systemctl disable --now nginx >/dev/null 2>&1 || true

stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi
