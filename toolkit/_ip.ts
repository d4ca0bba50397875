// IP address classes for http.fetch: which addresses are not the public
// internet (loopback, private, link-local, ...), including IPv4 addresses
// carried inside IPv6 ones (mapped, compatible, NAT64, 6to4).
import { isIPv4, isIPv6 } from "node:net";

/** Parses dotted-quad IPv4 (as node:net and URL print it) to 4 bytes. */
function v4Bytes(address: string): number[] | undefined {
  if (!isIPv4(address)) return undefined;
  return address.split(".").map(Number);
}

/** Parses IPv6 (with "::" and an optional dotted IPv4 tail; no zone) to 16 bytes. */
function v6Bytes(address: string): number[] | undefined {
  if (!isIPv6(address) || address.includes("%")) return undefined;
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    const v4 = v4Bytes(text.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail.push(...v4);
    text = text.slice(0, lastColon + 1) + "0:0";
  }
  const [head, rest] = text.includes("::") ? text.split("::") : [text, undefined];
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const words = rest === undefined
    ? left
    : [...left, ...Array(8 - left.length - right.length).fill(0), ...right];
  if (words.length !== 8) return undefined;
  const bytes = words.flatMap((w) => [w >> 8, w & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

function inV4(bytes: number[], prefix: number[], bits: number): boolean {
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3;
    const mask = 0x80 >> (i & 7);
    if ((bytes[byte] & mask) !== (prefix[byte] & mask)) return false;
  }
  return true;
}

// IPv4 ranges that are not the public internet, most specific names first.
const V4: [number[], number, string][] = [
  [[127, 0, 0, 0], 8, "loopback"],
  [[10, 0, 0, 0], 8, "private"],
  [[172, 16, 0, 0], 12, "private"],
  [[192, 168, 0, 0], 16, "private"],
  [[100, 64, 0, 0], 10, "private"], // carrier-grade NAT
  [[169, 254, 0, 0], 16, "link-local"],
  [[0, 0, 0, 0], 8, "unspecified"],
  [[192, 0, 0, 0], 24, "reserved"],
  [[192, 0, 2, 0], 24, "reserved"],
  [[198, 18, 0, 0], 15, "reserved"],
  [[198, 51, 100, 0], 24, "reserved"],
  [[203, 0, 113, 0], 24, "reserved"],
  [[224, 0, 0, 0], 4, "multicast"],
  [[240, 0, 0, 0], 4, "reserved"], // and 255.255.255.255
];

// IPv6 ranges that are not the public internet (IPv4 carriers are handled apart).
const V6: [number[], number, string][] = [
  [[0xfe, 0x80], 10, "link-local"],
  [[0xfe, 0xc0], 10, "private"], // deprecated site-local
  [[0xfc, 0x00], 7, "private"], // unique local
  [[0xff, 0x00], 8, "multicast"],
  [[0x20, 0x01, 0x0d, 0xb8], 32, "reserved"], // documentation
  [[0x01, 0x00, 0, 0, 0, 0, 0, 0], 64, "reserved"], // discard
];

function classifyV4(bytes: number[]): string | undefined {
  for (const [prefix, bits, name] of V4) if (inV4(bytes, prefix, bits)) return name;
  return undefined;
}

/**
 * The class of an address that is not on the public internet ("loopback",
 * "private", "link-local", "unspecified", "multicast", "reserved"), or
 * undefined for a public one; "invalid" for something that is not an address.
 */
export function addressClass(address: string): string | undefined {
  const v4 = v4Bytes(address);
  if (v4 !== undefined) return classifyV4(v4);
  const v6 = v6Bytes(address);
  if (v6 === undefined) return "invalid";
  const zeros = (from: number, to: number) => v6.slice(from, to).every((b) => b === 0);
  if (zeros(0, 15) && v6[15] === 1) return "loopback";
  if (zeros(0, 16)) return "unspecified";
  // IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, and ::ffff:0:a.b.c.d: the IPv4 address decides.
  if (zeros(0, 10) && v6[10] === 0xff && v6[11] === 0xff) return classifyV4(v6.slice(12));
  if (zeros(0, 12)) return classifyV4(v6.slice(12)) ?? "reserved";
  if (zeros(0, 8) && v6[8] === 0xff && v6[9] === 0xff && zeros(10, 12)) {
    return classifyV4(v6.slice(12));
  }
  // NAT64 64:ff9b::a.b.c.d (and the local-use 64:ff9b:1::/48) and 6to4 2002:aabb:ccdd::.
  if (v6[0] === 0 && v6[1] === 0x64 && v6[2] === 0xff && v6[3] === 0x9b) {
    return classifyV4(v6.slice(12)) ?? (v6[4] === 0 && v6[5] === 1 ? "private" : undefined);
  }
  if (v6[0] === 0x20 && v6[1] === 0x02) return classifyV4(v6.slice(2, 6));
  // Teredo 2001:0::/32 carries an obfuscated IPv4 server and client: not allowed either.
  if (v6[0] === 0x20 && v6[1] === 0x01 && v6[2] === 0 && v6[3] === 0) return "reserved";
  for (const [prefix, bits, name] of V6) if (inV4(v6, prefix, bits)) return name;
  return undefined;
}

/** True when `host` (a URL hostname, IPv6 without brackets) is an IP address literal. */
export function isIpLiteral(host: string): boolean {
  return isIPv4(host) || isIPv6(host);
}
