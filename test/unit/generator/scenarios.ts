// Command lines shared by the golden, systemd-analyze and CLI tests.
export const SHA = "5d41402abc4b2a76b9719d911017c592".repeat(2);
/** A dm-verity root hash: data partition UUID bits first, verity partition UUID bits last. */
export const ROOT_HASH = "e2a1b3c4d5e6f708192a3b4c5d6e7f80" + "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

export interface Scenario {
  name: string;
  cmdline: string;
  inInitrd: boolean;
  /** Config files by the path the generator reads them from (below NETIMPORT_ROOT), in reading order. */
  configs?: { path: string; text: string }[];
  boot?: string;
}

const MAIN_CONFIG = "/etc/netimport/netimport.conf";

export const SCENARIOS: Scenario[] = [
  {
    name: "raw-root-pinned",
    cmdline: `rd.systemd.import=raw,root,verify=sha256:${SHA}::http://10.0.2.2:8080/root.raw.zst`,
    inInitrd: true,
  },
  {
    name: "tar-root-and-sysext",
    cmdline: "rd.systemd.import=tar,root,verify=checksum::http://10.0.2.2:8080/root.tar.gz rd.systemd.import=raw,sysext,ro:tools:https://images.example.com/tools.raw.xz",
    inInitrd: true,
    configs: [{ path: MAIN_CONFIG, text: "[Download]\nMirror=https://mirror.example.com/images/\nIdleTimeoutSec=20\nRetries=4\nHTTPSProxy=http://proxy:3128\nNoProxy=.lan\n[Verify]\nKeyring=/etc/netimport/keyring.pgp\n[Import]\nFailureAction=reboot\n" }],
  },
  {
    name: "systemd-example-3-loop-ref",
    cmdline: "rd.systemd.pull=raw,machine,verify=no,blockdev:image:https://example.com/image.raw.xz root=/dev/disk/by-loop-ref/image.raw-part2",
    inInitrd: true,
  },
  {
    name: "systemd-example-4-gpt-auto",
    cmdline: "rd.systemd.pull=raw,machine,verify=no,blockdev,bootorigin:rootdisk:image.raw.xz root=gpt-auto",
    inInitrd: true,
    boot: "http://example.com/image.efi",
  },
  {
    name: "systemd-example-5-bind",
    cmdline: "rd.systemd.pull=tar,machine,verify=no,bootorigin:root:image.tar.xz root=bind:/run/machines/root",
    inInitrd: true,
    boot: "http://example.com/image.efi",
  },
  {
    // A DDI (GPT with root and maybe /usr partitions, their -verity and -verity-sig partitions), its root
    // hash pinned: dm-verity for root always, for /usr when the image has one.
    name: "ddi-root-roothash",
    cmdline: `rd.systemd.import=raw,root::http://10.0.2.2:8080/root.raw.xz roothash=${ROOT_HASH}`,
    inInitrd: true,
  },
  {
    // A lazy DDI root: served as an NBD device from Range requests, verified block by block by dm-verity
    // (pinned by roothash=), copied to a local disk in the background, checked against SHA256SUMS then.
    name: "lazy-ddi-root",
    cmdline: `rd.systemd.import=raw,root,lazy,verify=checksum::http://10.0.2.2:8080/root.raw roothash=${ROOT_HASH}`,
    inInitrd: true,
    configs: [{ path: MAIN_CONFIG, text: "[Lazy]\nCopyDirectory=/run/local-disk\nOutageLimitSec=120\n" }],
  },
  {
    // A /usr-only image: systemd's fstab-generator mounts the tmpfs root, netimport only /usr.
    name: "usr-only-tmpfs",
    cmdline: "rd.systemd.import=raw,root::http://10.0.2.2:8080/usr.raw.xz root=tmpfs",
    inInitrd: true,
  },
  {
    name: "host-provisioning",
    cmdline: "systemd.pull=raw,confext::https://example.com/myconfext.raw.gz systemd.pull=tar,sysext,verify=no::https://example.com/mysysext.tar.gz systemd.import=portable,blockdev:\"my app\":file:///srv/app.raw systemd.pull.success_action=none",
    inInitrd: false,
  },
  {
    // Credentials in the image URL (command line), a proxy and a mirror (a drop-in): shown as ***, read
    // back at run time from the files named by --secrets-from=.
    name: "secrets-and-proxies",
    cmdline: "rd.systemd.import=raw,root,verify=checksum::https://deploy:s3cret@images.example.com/fleet/root.raw.xz rd.systemd.import=sysext,verify=no::http://10.0.2.2:8080/tools.raw rd.systemd.import.failure_action=poweroff",
    inInitrd: true,
    configs: [
      { path: MAIN_CONFIG, text: "[Download]\nMirror=https://mirror.example.com/images/\nImageMemoryMax=1.5G\n" },
      {
        path: "/etc/netimport/netimport.conf.d/50-proxy.conf",
        text: "[Download]\nHTTPSProxy=http://proxyuser:pr0xy@proxy.example.com:3128\nHTTPProxy=http://proxy.example.com:3128\nNoProxy=.lan, 10.0.0.0/8\nMirror=https://t0ken@mirror2.example.com/images/\n",
      },
    ],
  },
];
