// The key rule shared by both storage adapters.

/**
 * The most UTF-8 bytes a key may have: Deno KV refuses keys over 2 KiB, and
 * storage("vault") puts the key inside a longer KV key (prefix, generation id
 * and chunk index).
 */
export const MAX_KEY_BYTES = 1500;
/** The most UTF-8 bytes of one segment: the file name limit of common file systems. */
export const MAX_SEGMENT_BYTES = 255;
/** Names of storage("local")'s temporary files start with this; no key segment may. */
export const TEMP_PREFIX = ".tmp-";

const encoder = new TextEncoder();

// The start of a long key, quoted, with every control or line-breaking
// character escaped (JSON.stringify leaves C1 controls, U+2028 and U+2029),
// for a message that stays one short line.
export function shownKey(key: string): string {
  const chars = [...key];
  return JSON.stringify(chars.length > 40 ? `${chars.slice(0, 40).join("")}…` : key)
    .replace(
      /[\u007f-\u009f\u2028\u2029]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
}

export function assertStorageKey(key: unknown): asserts key is string {
  if (typeof key !== "string" || key.length === 0) {
    throw new TypeError(
      `Invalid storage key ${
        typeof key === "string" ? '""' : `of type ${key === null ? "null" : typeof key}`
      }: expected a non-empty string`,
    );
  }
  if (!key.isWellFormed()) {
    throw new TypeError(`Invalid storage key ${shownKey(key)}: it has a lone surrogate`);
  }
  const bytes = encoder.encode(key).length;
  if (bytes > MAX_KEY_BYTES) {
    throw new TypeError(
      `Invalid storage key ${
        shownKey(key)
      }: it has ${bytes} UTF-8 bytes, at most ${MAX_KEY_BYTES} allowed`,
    );
  }
  if (key.includes("\\") || key.includes("\0")) {
    throw new TypeError(`Invalid storage key ${shownKey(key)}: no backslash or NUL allowed`);
  }
  const parts = key.split("/");
  if (parts.some((part) => part === "" || part === "." || part === "..")) {
    throw new TypeError(
      `Invalid storage key ${
        shownKey(key)
      }: use a relative path without empty, "." or ".." segments`,
    );
  }
  for (const part of parts) {
    const size = encoder.encode(part).length;
    if (size > MAX_SEGMENT_BYTES) {
      throw new TypeError(
        `Invalid storage key ${shownKey(key)}: segment ${
          shownKey(part)
        } has ${size} UTF-8 bytes, at most ${MAX_SEGMENT_BYTES} allowed`,
      );
    }
    if (part.startsWith(TEMP_PREFIX)) {
      throw new TypeError(
        `Invalid storage key ${
          shownKey(key)
        }: segments starting with "${TEMP_PREFIX}" are reserved`,
      );
    }
  }
}
