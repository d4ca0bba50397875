// What an agent's ctx.storage() gives: its own namespace "agents/<name>/" of
// a runtime storage adapter, or a shared prefix that its token must grant
// with a permission "storage:<scheme>:<prefix>".
import type { AgentStorageOptions, StorageAdapter } from "./storage.ts";
import type { TokenAuthority } from "../token_authority.ts";
import { CapabilityDeniedError } from "../errors.ts";
import { assertStorageKey, shownKey } from "./_storage_key.ts";
import { permitsPrefix } from "../../internal/permissions.ts";

// A permission target may use only these (internal/permissions.ts).
const PREFIX_RE = /^[A-Za-z0-9_.@/-]+$/;

/**
 * Makes an agent's `ctx.storage(scheme, options)`.
 *
 * @param name The agent's name.
 * @param adapters The runtime's adapter of a scheme.
 * @param auth The runtime's token authority: a shared prefix is checked when it enforces.
 * @param token The agent's current token.
 */
export function agentStorage(
  name: string,
  adapters: (scheme: string) => StorageAdapter | undefined,
  auth: TokenAuthority,
  token: () => string,
): (scheme: string, options?: AgentStorageOptions) => StorageAdapter | undefined {
  const own = `agents/${name}`;
  const views = new Map<string, StorageAdapter>();
  return (scheme, options) => {
    const inner = adapters(scheme);
    if (inner === undefined) return undefined;
    const prefix = options?.prefix ?? own;
    if (typeof prefix !== "string" || !PREFIX_RE.test(prefix)) {
      const shown = typeof prefix === "string" ? shownKey(prefix) : `of type ${typeof prefix}`;
      throw new TypeError(
        `Invalid storage prefix ${shown}: expected a folder such as "shared/reports", of letters, digits and _ . @ / - (as in a permission "storage:${scheme}:<prefix>")`,
      );
    }
    try {
      assertStorageKey(prefix);
    } catch (error) {
      throw new TypeError(
        `Invalid storage prefix ${shownKey(prefix)}: ${
          (error as Error).message.replace(/^Invalid storage key "[^"]*": /, "")
        }`,
      );
    }
    const id = `${scheme}\0${prefix}`;
    let view = views.get(id);
    if (view === undefined) {
      const mine = prefix === own || prefix.startsWith(`${own}/`);
      const check = mine ? undefined : async () => {
        if (!auth.enforcing) return;
        const claims = await auth.verify(token());
        const wanted = `storage:${scheme}:${prefix}`;
        if (!permitsPrefix(claims.permissions, wanted)) {
          throw new CapabilityDeniedError(wanted, claims.sub);
        }
      };
      view = new ScopedStorage(inner, prefix, check);
      views.set(id, view);
    }
    return view;
  };
}

// An adapter's keys below `prefix/`, checked by `check` before each operation.
class ScopedStorage implements StorageAdapter {
  readonly scheme: string;
  #inner: StorageAdapter;
  #base: string;
  #check: (() => Promise<void>) | undefined;

  constructor(inner: StorageAdapter, prefix: string, check: (() => Promise<void>) | undefined) {
    this.scheme = inner.scheme;
    this.#inner = inner;
    this.#base = `${prefix}/`;
    this.#check = check;
  }

  async #key(key: string): Promise<string> {
    assertStorageKey(key);
    await this.#check?.();
    return this.#base + key;
  }

  async put(key: string, value: Uint8Array | string): Promise<void> {
    await this.#inner.put(await this.#key(key), value);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return await this.#inner.get(await this.#key(key));
  }

  async delete(key: string): Promise<boolean> {
    return await this.#inner.delete(await this.#key(key));
  }

  async list(prefix = ""): Promise<string[]> {
    await this.#check?.();
    const keys = await this.#inner.list(this.#base + prefix);
    return keys.map((key) => key.slice(this.#base.length));
  }
}
