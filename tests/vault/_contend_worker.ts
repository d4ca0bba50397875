// Subprocess for multi_process_test.ts: opens the vault at the path given as the
// first argument and appends K events, one at a time, to one stream shared with
// other processes, each with the stream's current version as expected version;
// on a version conflict it reads the stream again and retries. Any other error
// (a "database is locked" above all) ends it with code 1 and the message.
// Prints {"worker", "ids", "conflicts"} when done.
import { openVault, VersionConflictError } from "../../vault/mod.ts";

const [path, stream, worker, kArg] = Deno.args;
const K = Number(kArg);

try {
  const store = await openVault(path);
  const currentVersion = async () => {
    for await (const last of store.read({ stream, direction: "backward", limit: 1 })) {
      return last.version;
    }
    return 0;
  };
  const ids: string[] = [];
  let conflicts = 0;
  let version = await currentVersion();
  while (ids.length < K) {
    try {
      const result = await store.append(stream, [{
        kind: "contend.wrote",
        payload: { worker, n: ids.length },
        meta: { worker },
      }], { expectedVersion: version });
      if (result.version !== version + 1) {
        throw new Error(`appended at ${result.version}, expected ${version + 1}`);
      }
      version = result.version;
      ids.push(result.events[0].id);
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
      conflicts++;
      version = await currentVersion();
    }
  }
  await store.close();
  console.log(JSON.stringify({ worker, ids, conflicts }));
} catch (error) {
  console.error(`worker ${worker} failed: ${error instanceof Error ? error.stack : error}`);
  Deno.exit(1);
}
