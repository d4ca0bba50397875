// A KV that counts what a read of the log asks of it, shared by the read cost tests.

/**
 * A KV that counts the values it is asked for: each value a get or getMany returns and, from a
 * list, each value it hands out (`list: "values"`) or each batch it fetches (`"batches"`: its
 * `batchSize`, 500 by default, cut at its `limit`, counted in full when fetched).
 */
export function countingKv(
  kv: Deno.Kv,
  list: "values" | "batches",
): { kv: Deno.Kv; count: () => number; reset: () => void } {
  let count = 0;
  const proxy = new Proxy(kv, {
    get(target, name) {
      if (name === "get") {
        return async (...args: Parameters<Deno.Kv["get"]>) => {
          const entry = await target.get(...args);
          if (entry.value !== null) count++;
          return entry;
        };
      }
      if (name === "getMany") {
        return async (...args: Parameters<Deno.Kv["getMany"]>) => {
          const entries = await target.getMany(...args);
          count += entries.filter((e) => e.value !== null).length;
          return entries;
        };
      }
      if (name === "list") {
        return (...args: Parameters<Deno.Kv["list"]>) => {
          const options = args[1] ?? {};
          const limit = options.limit ?? Infinity;
          const batch = Math.min(options.batchSize ?? 500, limit);
          const iterator = target.list(...args);
          const next = iterator.next.bind(iterator);
          let taken = 0;
          let ended = false;
          iterator.next = async () => {
            // A batch is fetched when the previous one is used up.
            if (list === "batches" && !ended && taken % batch === 0 && taken < limit) {
              count += Math.min(batch, limit - taken);
            }
            const result = await next();
            if (result.done) ended = true;
            else taken++;
            if (list === "values" && !result.done) count++;
            return result;
          };
          return iterator;
        };
      }
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { kv: proxy, count: () => count, reset: () => count = 0 };
}
