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

/** An entry of a host list: a host (or `*.domain`) and the one port it opens, or every port. */
export interface HostEntry {
  host: string;
  port?: number;
}

// Splits "host:port" and "[v6]:port" into host and port text; a bare IPv6 address has no port.
function splitPort(entry: string): [string, string | undefined] {
  if (entry.startsWith("[")) {
    const end = entry.indexOf("]");
    if (end === -1 || entry.length === end + 1) return [entry, undefined];
    if (entry[end + 1] !== ":") return [entry, ""]; // "[::1]8080": malformed
    return [entry.slice(0, end + 1), entry.slice(end + 2)];
  }
  const colon = entry.lastIndexOf(":");
  if (colon === -1 || isIpLiteral(entry)) return [entry, undefined];
  return [entry.slice(0, colon), entry.slice(colon + 1)];
}

export function hostList(name: string, entries: unknown, wildcards: boolean): HostEntry[] {
  if (entries === undefined) return [];
  if (!Array.isArray(entries)) throw new TypeError(`Invalid ${name}: expected a list of hosts`);
  return entries.map((entry) => {
    const invalid = () =>
      new TypeError(
        `Invalid ${name} entry ${JSON.stringify(entry)}: expected a host name${
          wildcards ? ', "*.<domain>"' : ""
        } or an IP address, with an optional ":<port>" ("[<IPv6>]:<port>"), without scheme or path`,
      );
    if (typeof entry !== "string") throw invalid();
    const [hostText, portText] = splitPort(entry);
    let port: number | undefined;
    if (portText !== undefined) {
      if (!/^[1-9][0-9]*$|^0$/.test(portText)) throw invalid();
      port = Number(portText);
      if (port > 65535 || port < 1) {
        throw new RangeError(
          `Invalid ${name} entry ${JSON.stringify(entry)}: the port must be from 1 to 65535`,
        );
      }
    }
    const wild = wildcards && hostText.startsWith("*.");
    const host = canonicalHost(wild ? hostText.slice(2) : hostText);
    if (host === undefined || (wild && isIpLiteral(host))) throw invalid();
    return { host: wild ? `*.${host}` : host, ...(port !== undefined && { port }) };
  });
}

/** True when an entry of `list` names `host` (or a domain above it) at `port` or every port. */
export function matches(list: HostEntry[], host: string, port?: number): boolean {
  return list.some((entry) =>
    (entry.host.startsWith("*.") ? host.endsWith(entry.host.slice(1)) : entry.host === host) &&
    (port === undefined || entry.port === undefined || entry.port === port)
  );
}
