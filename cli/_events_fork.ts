// `toka events fork` and `toka events diff`: branch a vault at a position,
// and compare two vaults (a fork's re-run against its source, say).
import { basename, resolve } from "node:path";
import type { EventStore, LogHead } from "../runtime/log/event_store.ts";
import { formatPosition } from "../internal/ids.ts";
import { TokaError } from "../runtime/errors.ts";
import { KvEventStore } from "../vault/kv_store.ts";
import { forkVault } from "../vault/fork_vault.ts";
import { openVault } from "../vault/open_vault.ts";
import { vaultFiles } from "../internal/protected_paths.ts";
import { type CommandContext, withStore } from "./_context.ts";
import { INTERRUPTED_EXIT } from "./_interrupt.ts";
import { progress } from "./_progress.ts";
import { writeFailure } from "./_events_import.ts";
import { CONFIG_FILE } from "./_config_file.ts";
import { trustFilePath } from "./_trust.ts";

/** Options of {@linkcode forkEvents}. */
export interface ForkOptions {
  /** The position of the fork's last event. */
  at: string;
  /** Where the fork goes: a new file, or an empty remote vault's URL. */
  into: string;
}

/** What is not copied, said after every fork. */
const NOT_COPIED = "not copied: the secret pool (tokens of the source are not valid on the " +
  'fork), revocations, leases, schedules and storage("vault") files';

/**
 * Writes a new vault with the events of `--db` up to a position, their ids,
 * versions, positions and digests kept, and the agents' checkpoints and
 * state as of there (see `forkVault`). The source is only read. Refused
 * before anything is written, in one line: a target that exists, is the
 * source or one of Toka's own files, and a position beyond the head.
 *
 * @param ctx The command context.
 * @param options The position and the target.
 * @returns The exit code: 0, or 130 when interrupted.
 * @throws {TypeError} When the target is refused.
 * @throws {RangeError} When the position is 0 or beyond the head.
 */
export function forkEvents(ctx: CommandContext, options: ForkOptions): Promise<number> {
  const trust = trustFilePath(ctx.io.env);
  const own = [
    ...vaultFiles(ctx.dbLocation).slice(0, 4),
    ...(ctx.settings.configPath === undefined ? [] : [ctx.settings.configPath]),
    ...(trust === undefined ? [] : [trust]),
  ].map((path) => resolve(path));
  const local = !/^[a-z][a-z0-9+.-]*:/i.test(options.into);
  // A toka.json not made yet counts too: toka in that folder would read the fork as its config.
  if (
    options.into === ctx.dbLocation ||
    (local &&
      (own.includes(resolve(options.into)) || basename(options.into) === CONFIG_FILE))
  ) {
    throw new TypeError(
      `Cannot fork into "${options.into}": it is ${
        own[0] === resolve(options.into) || options.into === ctx.dbLocation
          ? "the vault being forked"
          : "one of Toka's own files"
      }`,
    );
  }
  return withStore(ctx, async (store) => {
    if (!(store instanceof KvEventStore)) throw new TypeError("Cannot fork: not a Deno KV vault");
    const bar = progress(ctx.io, "forking", { total: Number(options.at) });
    let copied = 0;
    let result;
    try {
      result = await forkVault(store, {
        at: options.at,
        into: options.into,
        signal: ctx.io.signal,
        onProgress: (n) => {
          bar.advance(n - copied);
          copied = n;
        },
      });
    } catch (error) {
      if (ctx.io.signal?.aborted === true) {
        ctx.io.stderr(
          `Interrupted: nothing was forked, and "${options.into}" was not left behind\n`,
        );
        return INTERRUPTED_EXIT;
      }
      const failure = writeFailure(error);
      if (failure !== undefined) {
        throw new Error(
          `Cannot fork: ${failure} while writing "${options.into}"; nothing was left behind`,
          { cause: error },
        );
      }
      throw error;
    } finally {
      bar.done();
    }
    if (ctx.json) {
      ctx.io.stdout(`${JSON.stringify(result)}\n`);
      return 0;
    }
    const count = (n: number, what: string) =>
      `${n.toLocaleString("en-US")} ${what}${n === 1 ? "" : "s"}`;
    ctx.io.stdout(
      `Forked ${count(result.events, "event")} into "${options.into}", head ${
        formatHead(result.head)
      }\n` +
        `Copied ${count(result.checkpoints, "agent checkpoint")} (at most position ${
          Number(result.head.position)
        }) and ${count(result.stateChanges, "state change")}; ${NOT_COPIED}\n`,
    );
    return 0;
  });
}

/** One side of {@linkcode diffEvents}' answer. */
interface Side {
  /** Events after the last common position. */
  events: number;
  /** Of which, per kind. */
  kinds: Record<string, number>;
}

/**
 * Compares two vaults: the last position up to which they hold the same
 * events (their chain digests agree there, so everything before agrees too),
 * found in a few reads, and what follows on each side, counted by kind. Both
 * are opened to read only. Every page of each is decoded first (payloads are
 * not read), so a damaged vault is reported rather than found the same.
 *
 * @param ctx The command context.
 * @param a The first vault's location.
 * @param b The second vault's location.
 * @returns The exit code: 0 when they hold the same events, 1 when they differ.
 * @throws {TypeError} When a vault cannot be opened.
 * @throws {TokaError} `"vault_corrupt"` naming the vault when a page of it cannot be decoded.
 */
export async function diffEvents(ctx: CommandContext, a: string, b: string): Promise<number> {
  const first = await openVault(a, { readOnly: true });
  try {
    const second = await openVault(b, { readOnly: true });
    try {
      // The digests compared are stored ones: an unreadable page would pass unseen.
      await naming(a, () => first.stats());
      await naming(b, () => second.stats());
      const common = await lastCommon(first, second);
      const from = common === null ? 1 : Number(common.position) + 1;
      const sides = [
        await naming(a, () => after(first, from)),
        await naming(b, () => after(second, from)),
      ];
      const same = sides[0].events === 0 && sides[1].events === 0;
      if (ctx.json) {
        ctx.io.stdout(`${JSON.stringify({ same, common, a: sides[0], b: sides[1] })}\n`);
      } else {
        const lines = [
          same
            ? common === null
              ? "Both logs are empty"
              : `The same ${Number(common.position).toLocaleString("en-US")} events, head ${
                formatHead(common)
              }`
            : common === null
            ? "No event in common"
            : `The same events up to position ${common.position}, head ${formatHead(common)}`,
        ];
        if (!same) {
          for (const [name, side] of [[a, sides[0]], [b, sides[1]]] as const) {
            lines.push(`${name}: ${describe(side)}`);
          }
        }
        ctx.io.stdout(`${lines.join("\n")}\n`);
      }
      return same ? 0 : 1;
    } finally {
      await second.close();
    }
  } finally {
    await first.close();
  }
}

/** Runs `read`; a damaged vault's error then names the vault. */
async function naming<T>(location: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (!(error instanceof TokaError) || error.code !== "vault_corrupt") throw error;
    throw new TokaError(
      "vault_corrupt",
      error.message.replace(/^The vault is/, `The vault ${JSON.stringify(location)} is`),
    );
  }
}

/** The head both logs share: the last position whose event has the same digest in both. */
async function lastCommon(a: EventStore, b: EventStore): Promise<LogHead | null> {
  const [headA, headB] = [await a.head(), await b.head()];
  if (headA === null || headB === null) return null;
  // Digests chain: equal at a position means equal at every one before it.
  let low = 0;
  let high = Math.min(Number(headA.position), Number(headB.position));
  let digest = "";
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    const [x, y] = [await digestAt(a, mid), await digestAt(b, mid)];
    if (x === y) {
      low = mid;
      digest = x;
    } else high = mid - 1;
  }
  if (low === 0) return null;
  return { position: formatPosition(low), digest };
}

async function digestAt(store: EventStore, position: number): Promise<string> {
  for await (const event of store.read({ from: String(position), limit: 1 })) return event.digest;
  return "";
}

async function after(store: EventStore, from: number): Promise<Side> {
  const side: Side = { events: 0, kinds: {} };
  for await (const event of store.read({ from: String(from) })) {
    side.events++;
    side.kinds[event.kind] = (side.kinds[event.kind] ?? 0) + 1;
  }
  return side;
}

function describe(side: Side): string {
  if (side.events === 0) return "nothing after it";
  const kinds = Object.entries(side.kinds).sort(([x], [y]) => x < y ? -1 : 1)
    .map(([kind, n]) => `${kind} ${n.toLocaleString("en-US")}`);
  return `${side.events.toLocaleString("en-US")} event${side.events === 1 ? "" : "s"} after it: ${
    kinds.join(", ")
  }`;
}

function formatHead(head: LogHead): string {
  return `${head.position}@${head.digest}`;
}
