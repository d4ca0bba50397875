/**
 * The documented, enforced bounds of the vault. They keep every atomic commit
 * within the remote Deno KV limits, so the same code runs on a local file,
 * Deno Deploy KV or a self-hosted `denokv`.
 *
 * @module
 */

/**
 * The largest event payload, in bytes of canonical JSON (4 MiB). Payloads over
 * {@linkcode INLINE_PAYLOAD_BYTES} are stored once per content digest, chunked
 * across 60 KiB KV values.
 *
 * @example
 * ```ts
 * import { MAX_PAYLOAD_BYTES } from "@toka/runtime/vault";
 *
 * console.log(MAX_PAYLOAD_BYTES); // 4194304
 * ```
 */
export const MAX_PAYLOAD_BYTES: number = 4 * 1024 * 1024;

/**
 * Payloads up to this many bytes (8 KiB) are stored inline, packed with other
 * events into shared KV values.
 *
 * @example
 * ```ts
 * import { INLINE_PAYLOAD_BYTES } from "@toka/runtime/vault";
 *
 * console.log(INLINE_PAYLOAD_BYTES); // 8192
 * ```
 */
export const INLINE_PAYLOAD_BYTES: number = 8 * 1024;

/**
 * The largest number of events in one `append` call (500).
 *
 * @example
 * ```ts
 * import { MAX_EVENTS_PER_APPEND } from "@toka/runtime/vault";
 *
 * console.log(MAX_EVENTS_PER_APPEND); // 500
 * ```
 */
export const MAX_EVENTS_PER_APPEND: number = 500;

/**
 * The largest append, in bytes as stored (720 KiB): one append is one atomic
 * commit, and a remote Deno KV commit holds at most 800 KiB. Payloads stored
 * as chunked blobs count only their 72-byte reference here.
 *
 * @example
 * ```ts
 * import { MAX_APPEND_BYTES } from "@toka/runtime/vault";
 *
 * console.log(MAX_APPEND_BYTES); // 737280
 * ```
 */
export const MAX_APPEND_BYTES: number = 720 * 1024;

/**
 * The deepest nesting of arrays and objects in a payload (256): `[[0]]` is
 * nested 2 deep. Deeper values are refused before anything is stored, since
 * recursive JSON code (the export's, a reader's) overflows the stack at a few
 * thousand.
 *
 * @example
 * ```ts
 * import { MAX_PAYLOAD_DEPTH } from "@toka/runtime/vault";
 *
 * console.log(MAX_PAYLOAD_DEPTH); // 256
 * ```
 */
export const MAX_PAYLOAD_DEPTH: number = 256;
