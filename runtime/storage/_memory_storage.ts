// An in-memory storage adapter: for tests, and for a runtime whose state
// need not outlive the process.
import type { StorageAdapter } from "./storage.ts";
import { assertStorageKey, toBytes } from "./_storage_key.ts";

export class MemoryStorage implements StorageAdapter {
  readonly scheme: string;
  #values = new Map<string, Uint8Array>();

  constructor(scheme: string) {
    this.scheme = scheme;
  }

  put(key: string, value: Uint8Array | string): Promise<void> {
    try {
      assertStorageKey(key);
      // A copy: the caller may change its array afterwards.
      this.#values.set(key, toBytes(value).slice());
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  get(key: string): Promise<Uint8Array | undefined> {
    try {
      assertStorageKey(key);
      return Promise.resolve(this.#values.get(key)?.slice());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  delete(key: string): Promise<boolean> {
    try {
      assertStorageKey(key);
      return Promise.resolve(this.#values.delete(key));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  list(prefix = ""): Promise<string[]> {
    return Promise.resolve([...this.#values.keys()].filter((k) => k.startsWith(prefix)).sort());
  }
}
