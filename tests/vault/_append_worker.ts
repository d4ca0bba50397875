// Subprocess for crash_test.ts: opens the vault at the path given as the first
// argument and appends forever to STREAMS streams concurrently, each append with
// its expected version. Some appends carry several events, some a payload over
// 8 KiB (a chunked blob). After each acknowledged append it writes one line,
// synchronously, before doing anything else:
//   {"s": stream, "v": last version, "ids": [id, ...], "big": [index, ...]}
// The parent kills it with SIGKILL at some moment and checks the file.
import { openVault, VersionConflictError } from "../../vault/mod.ts";

const [path, streamsArg = "5"] = Deno.args;
const STREAMS = Number(streamsArg);
const encoder = new TextEncoder();

const store = await openVault(path);

function ack(line: unknown): void {
  const bytes = encoder.encode(JSON.stringify(line) + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

/** Big payloads are deterministic from stream and version, so the test can check them. */
function bigPayload(stream: string, version: number): { s: string; v: number; fill: string } {
  return { s: stream, v: version, fill: `${stream}:${version}:`.padEnd(9000 + version % 7, "x") };
}

async function currentVersion(stream: string): Promise<number> {
  for await (const last of store.read({ stream, direction: "backward", limit: 1 })) {
    return last.version;
  }
  return 0;
}

async function run(stream: string): Promise<never> {
  let version = await currentVersion(stream);
  for (let round = 0;; round++) {
    const count = round % 4 === 1 ? 3 : 1;
    const big: number[] = [];
    const events = Array.from({ length: count }, (_, i) => {
      const v = version + i + 1;
      if ((round + stream.length) % 9 === 4 && i === 0) {
        big.push(i);
        return { kind: "crash.big", payload: bigPayload(stream, v) };
      }
      return { kind: "crash.small", payload: { s: stream, v } };
    });
    try {
      const result = await store.append(stream, events, { expectedVersion: version });
      version = result.version;
      ack({ s: stream, v: result.version, ids: result.events.map((e) => e.id), big });
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
      // Only this process writes these streams, so a conflict is a bug.
      console.error(`unexpected conflict: ${error.message}`);
      Deno.exit(3);
    }
  }
}

await Promise.all(Array.from({ length: STREAMS }, (_, n) => run(`crash/s${n}`))).catch(
  (error) => {
    console.error(error instanceof Error ? error.stack : String(error));
    Deno.exit(2);
  },
);
