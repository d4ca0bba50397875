// A KV Connect server for tests: it speaks the protocol Deno's remote KV client
// uses (https://github.com/denoland/denokv/blob/main/proto/kv-connect.md) and
// keeps each database in a local Deno.Kv, so `Deno.openKv("http://…")` can be
// tested without a `denokv` binary or Deno Deploy.
//
// Each database's raw key bytes are stored under the backing key `[keyBytes]`:
// a Uint8Array key part is encoded so that it orders bytewise, which is how the
// protocol orders raw keys, so a range read is a backing `list`. The value is
// stored as raw bytes behind a 9-byte header (the value encoding, then the
// expiry in ms since the epoch, 0 for none), and an entry's versionstamp is
// the one of the backing commit that wrote it.
//
// Expiry: Deno KV only promises that a value set with `expireIn` is deleted
// some time after it expires; local Deno KV and `denokv` sweep about once a
// minute and show it until then. This server hides it (from reads and checks)
// from its expiry time on, which the promise allows and a test can observe.
// Values over 65527 bytes (the backing limit less the header) are refused with
// a 413; the vault's values stay under 61 KiB.

/** Value encodings of the protocol (`ValueEncoding` in datapath.proto). */
const VE_V8 = 1;
const VE_LE64 = 2;
const VE_BYTES = 3;
/** `MutationType` values; sum, min, max and versionstamped keys are not served. */
const M_SET = 1;
const M_DELETE = 2;
/** `AtomicWriteStatus` values. */
const AW_SUCCESS = 1;
const AW_CHECK_FAILURE = 2;
/** `SnapshotReadStatus.SR_SUCCESS`, read by clients of protocol version 3. */
const SR_SUCCESS = 1;

const HEADER_BYTES = 9;
/** The backing Deno KV refuses larger values; the header takes 9 of them. */
const BACKING_MAX_VALUE_BYTES = 65536;
const SUPPORTED_VERSIONS = [1, 2, 3] as const;

/** A malformed or refused request, answered with a 4xx status and the message. */
class RequestError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

// ---------------------------------------------------------------------------
// Protobuf wire format, for the few messages of datapath.proto served here.

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;

class ProtoReader {
  #pos = 0;
  constructor(readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.#pos >= this.buf.length;
  }

  /** The next field number and wire type. */
  tag(): [number, number] {
    const tag = this.varint();
    return [Math.floor(tag / 8), tag % 8];
  }

  /** An unsigned varint; values above 2^53 lose precision, and no field here needs them. */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.#pos >= this.buf.length) throw new RequestError(400, "truncated varint");
      const byte = this.buf[this.#pos++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    throw new RequestError(400, "varint longer than 10 bytes");
  }

  bytes(): Uint8Array {
    const length = this.varint();
    if (this.#pos + length > this.buf.length) {
      throw new RequestError(400, "truncated length-delimited field");
    }
    const out = this.buf.subarray(this.#pos, this.#pos + length);
    this.#pos += length;
    return out;
  }

  /** Skips a field this server does not read, as protobuf requires of unknown fields. */
  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_BYTES) this.bytes();
    else if (wire === WIRE_FIXED64) this.#advance(8);
    else if (wire === WIRE_FIXED32) this.#advance(4);
    else throw new RequestError(400, `unsupported protobuf wire type ${wire}`);
  }

  #advance(n: number): void {
    if (this.#pos + n > this.buf.length) throw new RequestError(400, "truncated fixed field");
    this.#pos += n;
  }
}

/** Reads every field of a message, calling `field` with the reader positioned at its value. */
function readMessage(
  buf: Uint8Array,
  field: (reader: ProtoReader, number: number, wire: number) => boolean,
): void {
  const reader = new ProtoReader(buf);
  while (!reader.done) {
    const [number, wire] = reader.tag();
    if (!field(reader, number, wire)) reader.skip(wire);
  }
}

function expectWire(wire: number, expected: number, what: string): void {
  if (wire !== expected) throw new RequestError(400, `${what} has wire type ${wire}`);
}

class ProtoWriter {
  readonly #chunks: Uint8Array[] = [];

  #varint(value: number): void {
    const out: number[] = [];
    while (value >= 0x80) {
      out.push((value % 128) | 0x80);
      value = Math.floor(value / 128);
    }
    out.push(value);
    this.#chunks.push(Uint8Array.from(out));
  }

  /** A varint field; proto3 leaves zero values out. */
  uint(field: number, value: number): this {
    if (value !== 0) {
      this.#varint(field * 8 + WIRE_VARINT);
      this.#varint(value);
    }
    return this;
  }

  bool(field: number, value: boolean): this {
    return this.uint(field, value ? 1 : 0);
  }

  /** A length-delimited field; `always` writes it even when empty (a repeated element). */
  bytes(field: number, value: Uint8Array, always = false): this {
    if (value.length > 0 || always) {
      this.#varint(field * 8 + WIRE_BYTES);
      this.#varint(value.length);
      this.#chunks.push(value);
    }
    return this;
  }

  /** A packed repeated varint field. */
  packed(field: number, values: number[]): this {
    if (values.length > 0) {
      const inner = new ProtoWriter();
      for (const value of values) inner.#varint(value);
      this.bytes(field, inner.finish());
    }
    return this;
  }

  finish(): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(this.#chunks.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// The messages.

interface ReadRange {
  start: Uint8Array;
  end: Uint8Array;
  limit: number;
  reverse: boolean;
}

function decodeSnapshotRead(buf: Uint8Array): ReadRange[] {
  const ranges: ReadRange[] = [];
  readMessage(buf, (reader, number, wire) => {
    if (number !== 1) return false;
    expectWire(wire, WIRE_BYTES, "SnapshotRead.ranges");
    const range: ReadRange = {
      start: new Uint8Array(),
      end: new Uint8Array(),
      limit: 0,
      reverse: false,
    };
    readMessage(reader.bytes(), (r, n, w) => {
      if (n === 1) range.start = r.bytes();
      else if (n === 2) range.end = r.bytes();
      else if (n === 3) range.limit = r.varint();
      else if (n === 4) range.reverse = r.varint() !== 0;
      else return false;
      expectWire(w, n <= 2 ? WIRE_BYTES : WIRE_VARINT, `ReadRange field ${n}`);
      return true;
    });
    ranges.push(range);
    return true;
  });
  return ranges;
}

interface Check {
  key: Uint8Array;
  /** 10 bytes, or empty for "the key has no value". */
  versionstamp: Uint8Array;
}

interface Mutation {
  key: Uint8Array;
  data: Uint8Array;
  encoding: number;
  type: number;
  expireAtMs: number;
}

function decodeAtomicWrite(
  buf: Uint8Array,
): { checks: Check[]; mutations: Mutation[]; enqueues: number } {
  const checks: Check[] = [];
  const mutations: Mutation[] = [];
  let enqueues = 0;
  readMessage(buf, (reader, number, wire) => {
    if (number === 1) {
      expectWire(wire, WIRE_BYTES, "AtomicWrite.checks");
      const check: Check = { key: new Uint8Array(), versionstamp: new Uint8Array() };
      readMessage(reader.bytes(), (r, n, w) => {
        if (n !== 1 && n !== 2) return false;
        expectWire(w, WIRE_BYTES, `Check field ${n}`);
        if (n === 1) check.key = r.bytes();
        else check.versionstamp = r.bytes();
        return true;
      });
      checks.push(check);
    } else if (number === 2) {
      expectWire(wire, WIRE_BYTES, "AtomicWrite.mutations");
      const mutation: Mutation = {
        key: new Uint8Array(),
        data: new Uint8Array(),
        encoding: 0,
        type: 0,
        expireAtMs: 0,
      };
      readMessage(reader.bytes(), (r, n, w) => {
        if (n === 1) {
          expectWire(w, WIRE_BYTES, "Mutation.key");
          mutation.key = r.bytes();
        } else if (n === 2) {
          expectWire(w, WIRE_BYTES, "Mutation.value");
          readMessage(r.bytes(), (v, vn, vw) => {
            if (vn === 1) {
              expectWire(vw, WIRE_BYTES, "KvValue.data");
              mutation.data = v.bytes();
            } else if (vn === 2) {
              expectWire(vw, WIRE_VARINT, "KvValue.encoding");
              mutation.encoding = v.varint();
            } else return false;
            return true;
          });
        } else if (n === 3) {
          expectWire(w, WIRE_VARINT, "Mutation.mutation_type");
          mutation.type = r.varint();
        } else if (n === 4) {
          expectWire(w, WIRE_VARINT, "Mutation.expire_at_ms");
          mutation.expireAtMs = r.varint();
        } else return false;
        return true;
      });
      mutations.push(mutation);
    } else if (number === 3) {
      reader.skip(wire);
      enqueues++;
    } else return false;
    return true;
  });
  return { checks, mutations, enqueues };
}

interface Entry {
  key: Uint8Array;
  data: Uint8Array;
  encoding: number;
  versionstamp: Uint8Array;
}

function encodeSnapshotReadOutput(ranges: Entry[][]): Uint8Array<ArrayBuffer> {
  const out = new ProtoWriter();
  for (const entries of ranges) {
    const range = new ProtoWriter();
    for (const entry of entries) {
      range.bytes(
        1,
        new ProtoWriter()
          .bytes(1, entry.key)
          .bytes(2, entry.data)
          .uint(3, entry.encoding)
          .bytes(4, entry.versionstamp)
          .finish(),
        true,
      );
    }
    // An empty range is still one element of `ranges`: the client matches them by index.
    out.bytes(1, range.finish(), true);
  }
  return out.bool(4, true).uint(8, SR_SUCCESS).finish();
}

function encodeAtomicWriteOutput(
  status: number,
  versionstamp: Uint8Array,
  failedChecks: number[],
): Uint8Array<ArrayBuffer> {
  return new ProtoWriter().uint(1, status).bytes(2, versionstamp).packed(4, failedChecks).finish();
}

// ---------------------------------------------------------------------------
// The backing store.

function versionstampBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function packValue(data: Uint8Array, encoding: number, expireAtMs: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + data.length);
  out[0] = encoding;
  new DataView(out.buffer).setFloat64(1, expireAtMs, true);
  out.set(data, HEADER_BYTES);
  return out;
}

function unpackValue(
  packed: Uint8Array,
): { data: Uint8Array; encoding: number; expireAtMs: number } {
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  return {
    encoding: packed[0],
    expireAtMs: view.getFloat64(1, true),
    data: packed.subarray(HEADER_BYTES),
  };
}

function isLive(expireAtMs: number, now: number): boolean {
  return expireAtMs === 0 || expireAtMs > now;
}

/** One database: its backing kv, its id and a lock that makes every request atomic. */
class Database {
  readonly id = crypto.randomUUID();
  #tail: Promise<unknown> = Promise.resolve();

  constructor(readonly name: string, readonly kv: Deno.Kv, readonly clock: () => number) {}

  /**
   * Runs requests one at a time: a snapshot read spans several backing reads
   * and a write reads its checks before committing, and neither may see
   * another request's commit halfway.
   */
  exclusive<T>(body: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(body);
    this.#tail = result.catch(() => {});
    return result;
  }

  async read(ranges: ReadRange[]): Promise<Entry[][]> {
    const out: Entry[][] = [];
    for (const range of ranges) {
      if (range.limit <= 0 || range.limit > 2 ** 31) {
        throw new RequestError(400, `ReadRange.limit must be positive, got ${range.limit}`);
      }
      const entries: Entry[] = [];
      if (compareBytes(range.start, range.end) < 0) {
        const iter = this.kv.list<Uint8Array>(
          { start: [range.start], end: [range.end] },
          { reverse: range.reverse, batchSize: Math.min(range.limit, 500) },
        );
        for await (const entry of iter) {
          const value = unpackValue(entry.value);
          // Expired values may linger in the backing kv until it sweeps them; they are gone.
          if (!isLive(value.expireAtMs, this.clock())) continue;
          entries.push({
            key: entry.key[0] as Uint8Array,
            data: value.data,
            encoding: value.encoding,
            versionstamp: versionstampBytes(entry.versionstamp),
          });
          if (entries.length === range.limit) break;
        }
      }
      out.push(entries);
    }
    return out;
  }

  async write(
    checks: Check[],
    mutations: Mutation[],
  ): Promise<{ status: number; versionstamp: Uint8Array; failedChecks: number[] }> {
    for (const m of mutations) validateMutation(m);
    // The lock keeps other requests out, but the backing checks still guard the
    // commit against any other writer of the backing kv; a lost race is redone.
    for (;;) {
      const atomic = this.kv.atomic();
      const failedChecks: number[] = [];
      for (const [index, check] of checks.entries()) {
        if (check.versionstamp.length !== 0 && check.versionstamp.length !== 10) {
          throw new RequestError(400, "Check.versionstamp must be empty or 10 bytes");
        }
        const current = await this.kv.get<Uint8Array>([check.key]);
        atomic.check({ key: [check.key], versionstamp: current.versionstamp });
        const live = current.value !== null &&
          isLive(unpackValue(current.value).expireAtMs, this.clock());
        const expected = check.versionstamp.length === 0 ? null : hex(check.versionstamp);
        if ((live ? current.versionstamp : null) !== expected) failedChecks.push(index);
      }
      if (failedChecks.length > 0) {
        return { status: AW_CHECK_FAILURE, versionstamp: new Uint8Array(), failedChecks };
      }
      for (const m of mutations) {
        if (m.type === M_DELETE) {
          atomic.delete([m.key]);
        } else if (m.expireAtMs === 0) {
          atomic.set([m.key], packValue(m.data, m.encoding, 0));
        } else {
          // The backing kv drops the value some time after it expires; reads hide it from then on.
          const expireIn = Math.max(1, m.expireAtMs - this.clock());
          atomic.set([m.key], packValue(m.data, m.encoding, m.expireAtMs), { expireIn });
        }
      }
      const result = await atomic.commit();
      if (result.ok) {
        return {
          status: AW_SUCCESS,
          versionstamp: versionstampBytes(result.versionstamp),
          failedChecks: [],
        };
      }
    }
  }
}

function validateMutation(m: Mutation): void {
  if (m.key.length === 0) throw new RequestError(400, "Mutation.key is empty");
  if (m.type === M_DELETE) return;
  if (m.type !== M_SET) {
    throw new RequestError(400, `mutation type ${m.type} is not supported by this test server`);
  }
  if (m.encoding !== VE_V8 && m.encoding !== VE_LE64 && m.encoding !== VE_BYTES) {
    throw new RequestError(400, `unknown value encoding ${m.encoding}`);
  }
  if (m.encoding === VE_LE64 && m.data.length !== 8) {
    throw new RequestError(400, "an LE64 value must be 8 bytes");
  }
  if (HEADER_BYTES + m.data.length > BACKING_MAX_VALUE_BYTES) {
    throw new RequestError(
      413,
      `values over ${
        BACKING_MAX_VALUE_BYTES - HEADER_BYTES
      } bytes are not supported by this test server`,
    );
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------
// The HTTP server.

/**
 * The access token of every test server. Test files run in parallel in one
 * process, and `Deno.openKv` reads the token from the environment, so they all
 * set this same value and never unset it: one file's clean-up cannot pull the
 * token from under another's open.
 */
export const TEST_ACCESS_TOKEN = "toka-kv-connect-test-token";

/** Sets `DENO_KV_ACCESS_TOKEN` to {@linkcode TEST_ACCESS_TOKEN} for this process. */
export function useTestToken(): string {
  Deno.env.set("DENO_KV_ACCESS_TOKEN", TEST_ACCESS_TOKEN);
  return TEST_ACCESS_TOKEN;
}

/** Options of {@linkcode KvConnectServer.start}. */
export interface KvConnectServerOptions {
  /** The access token clients must present at the metadata exchange. */
  accessToken: string;
  /** The protocol versions offered, [1, 2, 3] by default. */
  versions?: number[];
  /** Milliseconds since the epoch by which values expire; `Date.now` by default. */
  clock?: () => number;
}

/**
 * A KV Connect server on 127.0.0.1 serving in-memory databases. Open a database
 * with `Deno.openKv(server.url(name))` after {@linkcode KvConnectServer.create}.
 */
export class KvConnectServer {
  /** Every protocol version agreed at a metadata exchange, for tests to inspect. */
  readonly negotiated: Set<number> = new Set();
  /** Data path requests answered, by method, to prove the data went over the wire. */
  readonly served: { snapshot_read: number; atomic_write: number } = {
    snapshot_read: 0,
    atomic_write: 0,
  };
  readonly #databases = new Map<string, Database>();
  readonly #byId = new Map<string, Database>();
  readonly #dataToken = crypto.randomUUID();
  readonly #abort = new AbortController();
  #server!: Deno.HttpServer<Deno.NetAddr>;

  private constructor(readonly options: KvConnectServerOptions) {}

  static start(options: KvConnectServerOptions): Promise<KvConnectServer> {
    const server = new KvConnectServer(options);
    return new Promise((resolve) => {
      server.#server = Deno.serve({
        hostname: "127.0.0.1",
        port: 0,
        signal: server.#abort.signal,
        onListen: () => resolve(server),
      }, (request) => server.#handle(request));
    });
  }

  /** The metadata URL of database `name`, the URL to give `Deno.openKv`. */
  url(name: string): string {
    return `http://127.0.0.1:${this.#server.addr.port}/kv/${encodeURIComponent(name)}`;
  }

  /** Creates an empty database `name` and returns its URL. */
  async create(name: string): Promise<string> {
    if (this.#databases.has(name)) throw new Error(`database "${name}" exists`);
    const db = new Database(name, await Deno.openKv(":memory:"), this.options.clock ?? Date.now);
    this.#databases.set(name, db);
    this.#byId.set(db.id, db);
    return this.url(name);
  }

  /** Drops database `name`, closing its backing kv once its requests are done. */
  async drop(name: string): Promise<void> {
    const db = this.#databases.get(name);
    if (!db) return;
    this.#databases.delete(name);
    this.#byId.delete(db.id);
    await db.exclusive(() => Promise.resolve());
    db.kv.close();
  }

  /** Stops serving, then drops every database. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.#server.finished;
    for (const name of [...this.#databases.keys()]) await this.drop(name);
  }

  async #handle(request: Request): Promise<Response> {
    try {
      if (request.method !== "POST") throw new RequestError(405, "only POST is served");
      const path = new URL(request.url).pathname;
      const meta = path.match(/^\/kv\/([^/]+)$/);
      if (meta) return await this.#metadata(request, decodeURIComponent(meta[1]));
      const data = path.match(/^\/data\/([0-9a-f-]{36})\/(snapshot_read|atomic_write)$/);
      if (data) return await this.#dataPath(request, data[1], data[2]);
      throw new RequestError(404, `no endpoint at ${path}`);
    } catch (error) {
      // A bug here is answered with a 4xx too: Deno's client retries a 5xx
      // forever, which would hang the test instead of failing it.
      const status = error instanceof RequestError ? error.status : 400;
      const message = error instanceof Error ? error.message : String(error);
      return new Response(message, { status, headers: { "content-type": "text/plain" } });
    }
  }

  async #metadata(request: Request, name: string): Promise<Response> {
    if (request.headers.get("authorization") !== `Bearer ${this.options.accessToken}`) {
      await request.body?.cancel();
      throw new RequestError(401, "the access token is not valid for this database");
    }
    const db = this.#databases.get(name);
    if (!db) throw new RequestError(404, `no database "${name}"`);
    // Without a body the client speaks version 1 only.
    const text = await request.text();
    let supported: unknown = [1];
    if (text !== "") {
      try {
        supported = (JSON.parse(text) as { supportedVersions?: unknown }).supportedVersions;
      } catch {
        throw new RequestError(400, "the metadata request body is not JSON");
      }
    }
    if (!Array.isArray(supported) || !supported.every((v) => Number.isInteger(v))) {
      throw new RequestError(400, "supportedVersions must be an array of integers");
    }
    const offered = this.options.versions ?? SUPPORTED_VERSIONS;
    const common = offered.filter((v) => supported.includes(v));
    if (common.length === 0) {
      throw new RequestError(400, `no common protocol version (server: ${offered.join(", ")})`);
    }
    const version = Math.max(...common);
    this.negotiated.add(version);
    // Version 1 clients take endpoint URLs as absolute; later ones resolve them
    // against the metadata URL, so a relative one exercises that.
    const endpoint = version === 1 ? new URL(`/data/${db.id}`, request.url).href : `/data/${db.id}`;
    return Response.json({
      version,
      databaseId: db.id,
      endpoints: [{ url: endpoint, consistency: "strong" }],
      token: this.#dataToken,
      expiresAt: new Date(Date.now() + 60 * 60 * 1000).toISOString(),
    });
  }

  async #dataPath(request: Request, id: string, method: string): Promise<Response> {
    const body = new Uint8Array(await request.arrayBuffer());
    if (request.headers.get("authorization") !== `Bearer ${this.#dataToken}`) {
      throw new RequestError(401, "the data path token is not valid");
    }
    const version = request.headers.get("x-denokv-version");
    const headerId = version === null
      ? request.headers.get("x-transaction-domain-id")
      : request.headers.get("x-denokv-database-id");
    if (version !== null && !["2", "3"].includes(version)) {
      throw new RequestError(400, `unsupported x-denokv-version ${version}`);
    }
    if (headerId !== id) throw new RequestError(400, "the database id header does not match");
    const db = this.#byId.get(id);
    if (!db) throw new RequestError(404, "no such database");

    if (method === "snapshot_read") {
      const ranges = decodeSnapshotRead(body);
      const entries = await db.exclusive(() => db.read(ranges));
      this.served.snapshot_read++;
      return protobuf(encodeSnapshotReadOutput(entries));
    }
    const { checks, mutations, enqueues } = decodeAtomicWrite(body);
    if (enqueues > 0) throw new RequestError(400, "queues are not supported by this test server");
    const result = await db.exclusive(() => db.write(checks, mutations));
    this.served.atomic_write++;
    return protobuf(
      encodeAtomicWriteOutput(result.status, result.versionstamp, result.failedChecks),
    );
  }
}

function protobuf(body: Uint8Array<ArrayBuffer>): Response {
  return new Response(body, { headers: { "content-type": "application/x-protobuf" } });
}
