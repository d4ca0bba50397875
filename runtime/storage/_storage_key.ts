// The value rule shared by the storage adapters; the key rules live in
// internal/storage_key.ts, which the toolkit's file tools share.
import { MAX_STORAGE_VALUE_BYTES } from "./storage.ts";

export { assertStorageKey, shownKey, TEMP_PREFIX } from "../../internal/storage_key.ts";

const encoder = new TextEncoder();

export function toBytes(value: Uint8Array | string): Uint8Array {
  let bytes: Uint8Array;
  if (typeof value === "string") {
    bytes = encoder.encode(value);
  } else if (value instanceof Uint8Array) {
    bytes = value;
  } else {
    throw new TypeError(`Invalid storage value: expected a string or a Uint8Array`);
  }
  if (bytes.length > MAX_STORAGE_VALUE_BYTES) tooLarge(bytes.length);
  return bytes;
}

function tooLarge(bytes: number): never {
  throw new RangeError(
    `Invalid storage value: it has ${bytes} bytes, at most ${MAX_STORAGE_VALUE_BYTES} (16 MiB) allowed`,
  );
}
