// The context calls (emits, tool calls) a handler made while handling one
// event, so that the event is passed only once they settled, and a rejection
// the handler never looked at fails the handling instead of crashing the host
// as an unhandled rejection (`(e, ctx) => void ctx.emit(...)`).

// A call's promise that records whether anyone looked at it: `await`,
// `then`, `catch`, `finally` and `Promise.all` all go through `then`.
class Watched<T> extends Promise<T> {
  // Promises derived from it are plain ones.
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  observed = false;

  override then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    // deno-lint-ignore no-explicit-any
    onRejected?: ((reason: any) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    this.observed = true;
    return super.then(onFulfilled, onRejected);
  }
}

// Settles without marking the call as looked at.
function outcome(call: Watched<unknown>): Promise<{ error: unknown } | undefined> {
  return new Promise((resolve) =>
    Promise.prototype.then.call(call, () => resolve(undefined), (error) => resolve({ error }))
  );
}

export class InFlight {
  #calls: Watched<unknown>[] = [];

  /** Returns `call` as the handler sees it, tracked. */
  track<T>(call: Promise<T>): Promise<T> {
    const watched = new Watched<T>((resolve, reject) => call.then(resolve, reject));
    // Handled here, so that a rejection nobody awaits never reaches the host.
    Promise.prototype.then.call(watched, undefined, () => {});
    this.#calls.push(watched as Watched<unknown>);
    return watched;
  }

  /**
   * Runs a handler, then waits for the calls it made without awaiting them:
   * the event is done only once they are.
   *
   * @throws The handler's error, or else the first rejection it did not look at.
   */
  async run(handler: () => void | Promise<void>): Promise<void> {
    let failure: { error: unknown } | undefined;
    try {
      await handler();
    } catch (error) {
      failure = { error };
    }
    failure ??= await this.settle();
    if (failure !== undefined) throw failure.error;
  }

  /**
   * Waits until every tracked call settled, including those made meanwhile
   * (from a callback of an earlier one).
   *
   * @returns The first rejection the handler did not look at, if any.
   */
  async settle(): Promise<{ error: unknown } | undefined> {
    let unobserved: { error: unknown } | undefined;
    for (let i = 0; i < this.#calls.length; i++) {
      const call = this.#calls[i];
      const failed = await outcome(call);
      if (failed !== undefined && !call.observed) unobserved ??= failed;
    }
    return unobserved;
  }
}
