// The key rule shared by both storage adapters.

export function assertStorageKey(key: unknown): asserts key is string {
  if (typeof key !== "string" || key.length === 0 || key.length > 1024) {
    throw new TypeError(
      `Invalid storage key ${JSON.stringify(key)}: expected 1 to 1024 characters`,
    );
  }
  if (key.includes("\\") || key.includes("\0")) {
    throw new TypeError(`Invalid storage key ${JSON.stringify(key)}: no backslash or NUL allowed`);
  }
  if (key.split("/").some((part) => part === "" || part === "." || part === "..")) {
    throw new TypeError(
      `Invalid storage key ${
        JSON.stringify(key)
      }: use a relative path without empty, "." or ".." segments`,
    );
  }
}

export function toBytes(value: Uint8Array | string): Uint8Array {
  if (typeof value === "string") return new TextEncoder().encode(value);
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`Invalid storage value: expected a string or a Uint8Array`);
}
