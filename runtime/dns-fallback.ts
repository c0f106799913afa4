// Host name resolution in an initrd that runs systemd-networkd without systemd-resolved: there is no
// /etc/resolv.conf, so getaddrinfo() has no server to ask. We then ask the DNS servers networkd
// learned from DHCP (`DNS=` in its lease files) or the kernel's `ip=` autoconfiguration
// (/proc/net/pnp) directly, with node:dns's Resolver, and hand that to the HTTP client as the sockets' `lookup`.
import { Resolver } from "node:dns/promises";
import { readdirSync, readFileSync } from "node:fs";
import type { LookupFunction } from "node:net";
import { isIP } from "node:net";
import { join } from "node:path";

/** The files consulted; injectable so tests need not touch the real ones. */
export interface DnsPaths {
  resolvConf: string;
  leasesDir: string;
  procNetPnp: string;
}

export const DEFAULT_DNS_PATHS: DnsPaths = {
  resolvConf: "/etc/resolv.conf",
  leasesDir: "/run/systemd/netif/leases",
  procNetPnp: "/proc/net/pnp",
};

/** True when resolv.conf text names at least one server. */
function hasNameserver(resolvConf: string): boolean {
  return /^\s*nameserver\s+\S+/m.test(resolvConf);
}

/**
 * The servers in a systemd-networkd lease file (`DNS=10.0.2.3 10.0.2.4`).
 *
 * @example parseLeaseDns("ADDRESS=10.0.2.15\nDNS=10.0.2.3\n") // ["10.0.2.3"]
 */
function parseLeaseDns(text: string): string[] {
  return [...text.matchAll(/^DNS=(.*)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/)).filter((s) => isIP(s) !== 0);
}

/** The servers in /proc/net/pnp (`nameserver 10.0.2.3`); 0.0.0.0 means none. */
function parsePnpNameservers(text: string): string[] {
  return [...text.matchAll(/^nameserver\s+(\S+)/gm)].map((m) => m[1]!).filter((s) => isIP(s) !== 0 && s !== "0.0.0.0");
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * The DNS servers to use instead of the system resolver, or undefined when resolv.conf names a
 * server (then the system resolver is right) or no fallback source knows one.
 */
export function fallbackDnsServers(paths: DnsPaths = DEFAULT_DNS_PATHS): string[] | undefined {
  const resolvConf = readText(paths.resolvConf);
  if (resolvConf !== undefined && hasNameserver(resolvConf)) return undefined;
  const servers: string[] = [];
  let leases: string[] = [];
  try {
    leases = readdirSync(paths.leasesDir).sort();
  } catch { /* no networkd leases */ }
  for (const lease of leases) servers.push(...parseLeaseDns(readText(join(paths.leasesDir, lease)) ?? ""));
  servers.push(...parsePnpNameservers(readText(paths.procNetPnp) ?? ""));
  const unique = [...new Set(servers)];
  return unique.length ? unique : undefined;
}

/**
 * The `lookup` a connection uses: the fallback servers' when there are any, else undefined (Node's
 * own, the system resolver).
 *
 * @example net.connect({ host, port, lookup: fallbackLookup() })
 */
export function fallbackLookup(paths: DnsPaths = DEFAULT_DNS_PATHS): LookupFunction | undefined {
  const servers = fallbackDnsServers(paths);
  return servers ? createServerLookup(servers) : undefined;
}

type Address = { address: string; family: number };

/**
 * A `lookup` for net/tls `connect` (the HTTP client's sockets, and undici's `connect.lookup` for proxies) that queries `servers` directly,
 * A records first, then AAAA. Servers may carry a port (`"127.0.0.1:5353"`), as Resolver accepts.
 *
 * @example new Agent({ connect: { lookup: createServerLookup(["10.0.2.3"]) } })
 */
export function createServerLookup(servers: string[], timeoutMs = 5000): LookupFunction {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  resolver.setServers(servers);
  const resolveAll = async (hostname: string, family: number): Promise<Address[]> => {
    if (isIP(hostname)) return [{ address: hostname, family: isIP(hostname) }];
    if (hostname === "localhost") return [{ address: "127.0.0.1", family: 4 }];
    const found: Address[] = [];
    const errors: unknown[] = [];
    if (family !== 6) {
      await resolver.resolve4(hostname).then((a) => found.push(...a.map((address) => ({ address, family: 4 }))), (e) => errors.push(e));
    }
    if (family !== 4 && (found.length === 0 || family === 6)) {
      await resolver.resolve6(hostname).then((a) => found.push(...a.map((address) => ({ address, family: 6 }))), (e) => errors.push(e));
    }
    if (!found.length) {
      const cause = errors[0] as NodeJS.ErrnoException | undefined;
      const error: NodeJS.ErrnoException = new Error(
        `cannot resolve ${hostname} with DNS servers ${servers.join(", ")}: ${cause?.code ?? "no address"}`,
      );
      error.code = cause?.code ?? "ENOTFOUND";
      throw error;
    }
    return found;
  };
  return ((hostname: string, options: { family?: number | string; all?: boolean }, callback: (...args: unknown[]) => void) => {
    const family = options.family === "IPv6" || options.family === 6 ? 6 : options.family === "IPv4" || options.family === 4 ? 4 : 0;
    resolveAll(hostname, family).then(
      (addresses) => (options.all ? callback(null, addresses) : callback(null, addresses[0]!.address, addresses[0]!.family)),
      (error) => callback(error),
    );
  }) as LookupFunction;
}
