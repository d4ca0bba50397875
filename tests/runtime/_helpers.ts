// Fakes shared by the runtime tests.
import { configure, type LogLevel, type LogRecord } from "@logtape/logtape";
import {
  type Agent,
  type AgentContext,
  type CheckpointStore,
  defineAgent,
  type EventRecord,
  type EventStore,
  KvCheckpointStore,
  KvLeaseStore,
  type LeaseStore,
  MemoryCheckpointStore,
  MemoryEventStore,
  MemoryLeaseStore,
  Runtime,
} from "../../runtime/mod.ts";
import { KvEventStore, openVault, vaultKv } from "../../vault/mod.ts";
import { KvConnectServer, useTestToken } from "../vault/_kv_connect_server.ts";

/** The KV checkpoint and lease stores on `kv`, as `createRuntime()` wires them. */
export function kvPorts(kv: Deno.Kv): { checkpoints: CheckpointStore; leases: LeaseStore } {
  return { checkpoints: new KvCheckpointStore(kv), leases: new KvLeaseStore(kv) };
}

/** A promise to resolve from outside. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => open = resolve);
  return { promise, open };
}

/** Waits until the condition holds, checking every few milliseconds. */
export async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("Timed out waiting for a condition");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Every event in the store. */
export async function all(store: EventStore, kinds?: string[]): Promise<EventRecord[]> {
  return await Array.fromAsync(store.read({ kinds }));
}

/** `store` with its append replaced by `append`; every other member is the store's own. */
export function withAppend(store: EventStore, append: EventStore["append"]): EventStore {
  return new Proxy(store, {
    get(target, key) {
      if (key === "append") return append;
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** The lease and checkpoint stores a runtime on `store` uses with `leases`: the KV ones on a KV vault. */
export function leasePorts(
  store: EventStore,
  leases: LeaseStore,
): { leases: LeaseStore; checkpoints: CheckpointStore } {
  const kv = vaultKv(store);
  return {
    leases,
    checkpoints: kv === undefined
      ? new MemoryCheckpointStore(leases as MemoryLeaseStore)
      : new KvCheckpointStore(kv),
  };
}

/**
 * Runs `body` in step `names[0]` on a new in-memory store and lease store, then in step
 * `names[1]` on a new Deno KV vault and its lease store, closing each after.
 */
export async function onEachStore(
  t: Deno.TestContext,
  body: (store: EventStore, leases: LeaseStore) => Promise<void>,
  names: [string, string] = ["in memory", "Deno KV"],
): Promise<void> {
  await t.step(names[0], async () => {
    const store = new MemoryEventStore();
    await body(store, new MemoryLeaseStore());
    await store.close();
  });
  await t.step(names[1], async () => {
    const kv = await Deno.openKv(":memory:");
    const store = await KvEventStore.open(kv);
    await body(store, new KvLeaseStore(kv));
    await store.close();
    kv.close();
  });
}

/**
 * A `t.step` that opens a fresh set-up with `open`, hands it to the body and closes it after,
 * whether the body passed or not.
 */
export function stepWith<S extends { close(): Promise<void> }>(
  t: Deno.TestContext,
  open: () => Promise<S>,
): (name: string, body: (s: S) => Promise<void>) => Promise<boolean> {
  return (name, body) =>
    t.step(name, async () => {
      const s = await open();
      try {
        await body(s);
      } finally {
        await s.close();
      }
    });
}

/** Starts `deno run -A script ...args` with its stdout piped to the test and its stderr shown. */
export function spawnChild(script: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

/**
 * Reads `child`'s stdout until `seen` holds for all it printed, then SIGKILLs it and returns
 * what it printed; throws `ended` if the output ends first.
 */
export async function killWhen(
  child: Deno.ChildProcess,
  seen: (text: string) => boolean,
  ended = "The child ended before it was killed",
): Promise<string> {
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!seen(text)) {
    const { value, done } = await lines.read();
    if (done) throw new Error(ended);
    text += value;
  }
  child.kill("SIGKILL");
  await lines.cancel();
  return text;
}

/** How many lines of `text` start with `prefix`. */
export function linesStarting(text: string, prefix: string): number {
  return text.split("\n").filter((line) => line.startsWith(prefix)).length;
}

/**
 * The life of a crash test's child process, run with the arguments mode, vault file and task
 * count: its runtime on the vault (with a short agent lease, as the killed process keeps its
 * lease until it ends) runs the agent made by `agent`. In mode `produce` it emits the tasks
 * (`task.created`, payload `{ n }`), prints "produced" and runs until killed; otherwise it waits
 * until the agent has handled the last task, stops the runtime and returns it with its store.
 */
export async function crashChild(
  agent: (mode: string) => Agent,
): Promise<{ mode: string; runtime: Runtime; store: KvEventStore }> {
  const [mode, db, count] = Deno.args;
  const store = await openVault(db);
  const runtime = await Runtime.create({ vault: store, ...kvPorts(store.kv), agentLeaseSecs: 1 });
  runtime.register(agent(mode));
  await runtime.start();
  if (mode === "produce") {
    for (let n = 1; n <= Number(count); n++) {
      await runtime.emit({ kind: "task.created", payload: { n } });
    }
    console.log("produced");
    await new Promise(() => {}); // Runs until killed.
  }
  const [last] = await Array.fromAsync(
    store.read({ kinds: ["task.created"], direction: "backward", limit: 1 }),
  );
  while (runtime.agents()[0].position !== last.position) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await runtime.stop();
  return { mode, runtime, store };
}

/**
 * Sends the log records of `category` at `lowestLevel` and above to the array it returns
 * (LogTape's own below error to nowhere); the test calls LogTape's reset() when done.
 */
export async function recordLogs(
  lowestLevel: LogLevel = "trace",
  category: string[] = ["toka"],
): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  await configure({
    sinks: { record: (record) => void records.push(record) },
    loggers: [
      { category, lowestLevel, sinks: ["record"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
    reset: true,
  });
  return records;
}

/**
 * Starts a server with the test token, runs `body` with an opener of fresh remote vaults on it
 * (each closed and its database dropped by its `close`), and stops the server after.
 */
export async function withRemoteVaults(
  body: (open: () => Promise<{ store: KvEventStore; close(): Promise<void> }>) => Promise<void>,
): Promise<void> {
  const server = await KvConnectServer.start({ accessToken: useTestToken() });
  let n = 0;
  try {
    await body(async () => {
      const name = `vault-${n++}`;
      const store = await openVault(await server.create(name));
      return {
        store,
        close: async () => {
          await store.close();
          await server.drop(name);
        },
      };
    });
  } finally {
    await server.close();
  }
}

/**
 * Starts a runtime on `vault` (`ports` for its leases and checkpoints, a 30 s agent lease) whose
 * agent "worker" handles one task.created with `body`; waits until it has, stops the runtime and
 * returns what `body` threw, if anything.
 */
export async function handleOneTask(
  vault: EventStore,
  ports: { leases: LeaseStore; checkpoints: CheckpointStore },
  body: (ctx: AgentContext) => Promise<void>,
): Promise<unknown[]> {
  const errors: unknown[] = [];
  let finished = false;
  const runtime = await Runtime.create({ vault, ...ports, agentLeaseSecs: 30 });
  runtime.register(defineAgent({
    name: "worker",
    subscribe: ["task.created"],
    async handle(_event, ctx) {
      try {
        await body(ctx);
      } catch (error) {
        errors.push(error);
      } finally {
        finished = true;
      }
    },
  }));
  await runtime.start();
  await runtime.emit({ kind: "task.created" });
  await until(() => finished);
  await runtime.stop();
  return errors;
}
