#!/bin/bash
# dracut module "netimport": boot into a disk image the initrd downloads over HTTP(S).
#
# Installs netimport's tree (the executable and its generator link) when it is installed on the system
# building the initrd (NETIMPORT_TREE=/path/to/dist/tree overrides where to take it from), the tools its
# units run (losetup, mount, GNU tar; dmsetup and the dm-verity modules for disk images with verity
# partitions; nbd-client and the nbd module for a lazy root), the C++ runtime the executable links
# against, the keyrings and verity certificates of the system building the initrd, and a DHCP network
# for systemd-networkd with a wait-online that runs even without rd.neednet.
# Use: netimport's install tree puts this folder at /usr/lib/dracut/modules.d/95netimport; run
# `dracut --add netimport --nostrip …` (--nostrip: stripping would cut the application out of the single
# executable).

# Only when asked for by name (--add netimport / --modules …).
check() {
    return 255
}

depends() {
    echo systemd systemd-initrd systemd-networkd systemd-udevd
    return 0
}

install() {
    local tree="${NETIMPORT_TREE:-/}"
    inst_multiple losetup mount umount tar
    # Disk images with verity partitions: netimport sets up dm-verity with dmsetup (no veritysetup).
    inst_multiple -o dmsetup blkid
    # A lazy root (the `lazy` option) is served to the kernel's NBD driver by netimport and connected
    # with nbd-client (Debian's nbd-client package; optional: without it only lazy boots fail). Its
    # server copies dmsetup and nbd-client into a tool kit it runs them from after switch-root, through
    # chroot (coreutils).
    inst_multiple -o nbd-client chroot
    # What a pull leaves on the image, as systemd-pull does: user.source_url/user.source_etag xattrs.
    inst_multiple -o setfattr getfattr
    # Kernel modules the units load: dm_mod for the device-mapper linear devices a lazy root's partitions
    # get and for dm-verity (dm_verity) over them; nbd for the lazy root's block device while it is
    # served over HTTP; loop for a downloaded image and for the local copy a lazy root switches to
    # once complete. Debian builds all four as modules, so a --no-hostonly initrd needs them named.
    instmods dm_mod dm_verity nbd loop
    # What verifies downloads (systemd's import keyrings) and verity signatures (systemd's verity.d).
    inst_multiple -o /etc/systemd/import-pubring.pgp /etc/systemd/import-pubring.gpg \
        /usr/lib/systemd/import-pubring.pgp /usr/lib/systemd/import-pubring.gpg \
        /etc/verity.d/*.crt /usr/lib/verity.d/*.crt
    # The executable is Node: it links libstdc++, libgcc_s, libm, and the libdl/libpthread stubs.
    inst_libdir_file "libstdc++.so.6*" "libgcc_s.so.1*" "libm.so.6*" "libdl.so.2*" "libpthread.so.0*"
    if [[ -x "$tree/usr/lib/netimport/netimport" ]]; then
        inst_simple "$tree/usr/lib/netimport/netimport" /usr/lib/netimport/netimport
        ln_r /usr/lib/netimport/netimport /usr/lib/systemd/system-generators/netimport-generator
    fi
    inst_simple "$moddir/netimport.network" /usr/lib/systemd/network/90-netimport.network
    inst_simple "$moddir/wait-online.conf" \
        "$systemdsystemunitdir/systemd-networkd-wait-online.service.d/99-netimport.conf"
    # dracut < 105 has no systemd-emergency module: the generated units' OnFailure=emergency.target
    # needs these units in the initrd.
    inst_multiple -o "$systemdsystemunitdir/emergency.target" "$systemdsystemunitdir/emergency.service" \
        "$systemdsystemunitdir/rescue.target" "$systemdsystemunitdir/rescue.service" \
        "$systemdutildir/systemd-sulogin-shell" sulogin
    $SYSTEMCTL -q --root "$initdir" enable systemd-networkd-wait-online.service 2>/dev/null || :
}
