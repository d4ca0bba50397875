/** A promise with its settle functions, as `Promise.withResolvers` gives (which Node 20 lacks). */
export interface Deferred<T> {
  /** The promise. */
  promise: Promise<T>;
  /** Fulfils it. */
  resolve(value: T): void;
  /** Rejects it. */
  reject(reason?: unknown): void;
}

/**
 * A new {@linkcode Deferred}.
 *
 * @returns The promise and its settle functions.
 */
export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason?: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
