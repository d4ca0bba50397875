// The host lists of http.fetch (allow, allowPrivate): entries in the form URLs
// print hosts, so that every spelling of an address matches the same entry.
import { isIpLiteral } from "./_ip.ts";

// A host as URLs print it: lower case, IPv4 in dotted decimal (so "2130706433",
// "0x7f.1" and "127.1" all become "127.0.0.1"), IPv6 compressed, without brackets
// and without a final dot.
export function canonicalHost(host: string): string | undefined {
  if (/[\s/?#@*\\]/.test(host) || host === "") return undefined;
  if (isIpLiteral(host) && host.includes(":")) host = `[${host}]`; // a bare IPv6 address
  // No port: "host:80" would pass the URL check below, 80 being http's default.
  if (host.startsWith("[") ? !host.endsWith("]") : host.includes(":")) return undefined;
  let url: URL;
  try {
    url = new URL(`http://${host}`);
  } catch {
    return undefined;
  }
  if (url.port !== "" || url.username !== "" || url.pathname !== "/") return undefined;
  return bare(url.hostname);
}

export function bare(hostname: string): string {
  const unbracketed = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname;
  return unbracketed.endsWith(".") ? unbracketed.slice(0, -1) : unbracketed;
}

export function hostList(name: string, entries: unknown, wildcards: boolean): string[] {
  if (entries === undefined) return [];
  if (!Array.isArray(entries)) throw new TypeError(`Invalid ${name}: expected a list of hosts`);
  return entries.map((entry) => {
    const wild = wildcards && typeof entry === "string" && entry.startsWith("*.");
    const host = typeof entry === "string"
      ? canonicalHost(wild ? entry.slice(2) : entry)
      : undefined;
    if (host === undefined || (wild && isIpLiteral(host))) {
      throw new TypeError(
        `Invalid ${name} entry ${JSON.stringify(entry)}: expected a host name${
          wildcards ? ', "*.<domain>"' : ""
        } or an IP address, without scheme, port or path`,
      );
    }
    return wild ? `*.${host}` : host;
  });
}

export function matches(list: string[], host: string): boolean {
  return list.some((entry) =>
    entry.startsWith("*.") ? host.endsWith(entry.slice(1)) : entry === host
  );
}
