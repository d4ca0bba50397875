// Where the auth feature keeps its secret pool in Deno KV: the CLI reads it to
// tell whether a vault has a pool yet without creating one.

/** The one KV key that holds the whole secret pool. */
export const POOL_KEY: Deno.KvKey = ["auth", "pool"];
