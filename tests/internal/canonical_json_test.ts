// internal/canonical_json.ts against RFC 8785's own examples (expected outputs written from
// the RFC's text), against the `canonicalize` package on thousands of random JSON values
// (byte for byte: event digests are over this form and must not change), and its refusals.
import assert from "node:assert/strict";
import canonicalize from "npm:canonicalize@5.1.0";
import { canonicalJson, jsonDigest, JsonValueError } from "../../internal/canonical_json.ts";

const jcs = (value: unknown) => canonicalJson(value, 256);

/** The double whose IEEE 754 bits are `hex` (16 hex digits, big-endian). */
function double(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

Deno.test("RFC 8785's examples", async (t) => {
  await t.step("3.2.2 and 3.2.4: the sample object, and its UTF-8 bytes", () => {
    // The input as the RFC writes it, parsed as JSON.
    const input = JSON.parse(`{
      "numbers": [333333333.33333329, 1E30, 4.50,
                  2e-3, 0.000000000000000000000000001],
      "string": "\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\"\\/",
      "literals": [null, true, false]
    }`);
    const expected = `{"literals":[null,true,false],"numbers":[333333333.3333333,` +
      `1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA'B\\"\\\\\\\\\\"/"}`;
    assert.equal(jcs(input), expected);
    const hex = `
      7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72
      75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a
      5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31
      65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37
      5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30
      30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d`;
    const bytes = Uint8Array.from(hex.trim().split(/\s+/), (h) => parseInt(h, 16));
    assert.deepEqual(new TextEncoder().encode(jcs(input)), bytes);
  });

  await t.step("3.2.3: members sorted by UTF-16 code units", () => {
    const input = JSON.parse(`{
      "\\u20ac": "Euro Sign",
      "\\r": "Carriage Return",
      "\\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\\ud83d\\ude00": "Emoji: Grinning Face",
      "\\u0080": "Control",
      "\\u00f6": "Latin Small Letter O With Diaeresis"
    }`);
    const order = [
      "Carriage Return",
      "One",
      "Control",
      "Latin Small Letter O With Diaeresis",
      "Euro Sign",
      "Emoji: Grinning Face",
      "Hebrew Letter Dalet With Dagesh",
    ];
    const output = jcs(input);
    assert.deepEqual(Object.values(JSON.parse(output)).length, order.length);
    assert.deepEqual([...output.matchAll(/:"([^"]+)"/g)].map((m) => m[1]), order);
    assert.equal(
      output,
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control",' +
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",' +
        '"\u{1F600}":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  await t.step("appendix B: numbers by their IEEE 754 bits", () => {
    const table: [string, string][] = [
      ["0000000000000000", "0"],
      ["8000000000000000", "0"],
      ["0000000000000001", "5e-324"],
      ["8000000000000001", "-5e-324"],
      ["7fefffffffffffff", "1.7976931348623157e+308"],
      ["ffefffffffffffff", "-1.7976931348623157e+308"],
      ["4340000000000000", "9007199254740992"],
      ["c340000000000000", "-9007199254740992"],
      ["4430000000000000", "295147905179352830000"],
      ["44b52d02c7e14af5", "9.999999999999997e+22"],
      ["44b52d02c7e14af6", "1e+23"],
      ["44b52d02c7e14af7", "1.0000000000000001e+23"],
      ["444b1ae4d6e2ef4e", "999999999999999700000"],
      ["444b1ae4d6e2ef4f", "999999999999999900000"],
      ["444b1ae4d6e2ef50", "1e+21"],
      ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
      ["3eb0c6f7a0b5ed8d", "0.000001"],
      ["41b3de4355555553", "333333333.3333332"],
      ["41b3de4355555554", "333333333.33333325"],
      ["41b3de4355555555", "333333333.3333333"],
      ["41b3de4355555556", "333333333.3333334"],
      ["41b3de4355555557", "333333333.33333343"],
      ["becbf647612f3696", "-0.0000033333333333333333"],
      ["43143ff3c1cb0959", "1424953923781206.2"],
    ];
    for (const [bits, expected] of table) assert.equal(jcs(double(bits)), expected, bits);
    // NaN and Infinity have no JSON form: an error, as the RFC says.
    for (const bits of ["7fffffffffffffff", "7ff0000000000000"]) {
      assert.throws(() => jcs(double(bits)), JsonValueError, bits);
    }
  });
});

Deno.test("canonicalJson refuses what is not I-JSON, naming where", async (t) => {
  await t.step("each kind of wrong value", () => {
    const cyclic: Record<string, unknown> = { a: [] };
    (cyclic.a as unknown[]).push(cyclic);
    const cases: [unknown, string][] = [
      [() => 1, "$ is a function, not a JSON value"],
      [undefined, "$ is undefined, not a JSON value"],
      [{ a: [1, 2n] }, "$.a[1] is bigint, not a JSON value"],
      [{ "a b": Symbol("s") }, '$["a b"] is symbol, not a JSON value'],
      [{ d: new Date(0) }, "$.d is a Date object, not a JSON value"],
      [[NaN], "$[0] is NaN, not a JSON value"],
      [{ x: -Infinity }, "$.x is -Infinity, not a JSON value"],
      [{ x: [undefined] }, "$.x[0] is undefined, not a JSON value"],
      ["ok\uDFFF", "$ has a lone surrogate U+DFFF at index 2, not valid Unicode"],
      [
        { s: ["\u{1F600}\uD83D"] },
        "$.s[0] has a lone surrogate U+D83D at index 2, not valid Unicode",
      ],
      [
        { k: { "\uDC00x": 1 } },
        "$.k has a key with a lone surrogate U+DC00 at index 0, not valid Unicode",
      ],
      [cyclic, "$.a[0].a[0].a[0]…[0].a[0] is a circular reference, not a JSON value"],
    ];
    for (const [value, message] of cases) {
      assert.throws(() => jcs(value), (error: unknown) => {
        assert.ok(error instanceof JsonValueError && error instanceof TypeError, String(error));
        assert.equal(error.message, message);
        assert.equal(`${error.path} ${error.problem}`, message);
        return true;
      });
    }
  });

  await t.step("nesting: 256 deep is taken, 257 refused, 100,000 refused without overflow", () => {
    const nested = (depth: number) => JSON.parse("[".repeat(depth) + "]".repeat(depth));
    assert.equal(jcs(nested(256)), "[".repeat(256) + "]".repeat(256));
    for (const depth of [257, 100_000]) {
      assert.throws(() => jcs(nested(depth)), {
        name: "TypeError",
        message: "$[0][0][0][0][0][0]…[0][0][0] is nested 257 deep, over the maximum of 256",
      });
    }
    assert.throws(() => canonicalJson([[[1]]], 2), {
      message: "$[0][0] is nested 3 deep, over the maximum of 2",
    });
  });

  await t.step("a long key is cut in the path; a shared (not circular) object is fine", () => {
    const key = "k".repeat(100);
    assert.throws(() => jcs({ [key]: NaN }), {
      message: `$["${"k".repeat(31)}…"] is NaN, not a JSON value`,
    });
    const shared = { n: 1 };
    assert.equal(jcs({ a: shared, b: [shared, shared] }), '{"a":{"n":1},"b":[{"n":1},{"n":1}]}');
    assert.equal(jcs(Object.assign(Object.create(null), { b: 1, a: 2 })), '{"a":2,"b":1}');
  });
});

/** A small, seeded generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random JSON value: numbers of every shape, strings over the whole of Unicode, nesting. */
function randomJson(rand: () => number, depth = 0): unknown {
  const pick = <T>(items: T[]): T => items[Math.floor(rand() * items.length)];
  const int = (n: number) => Math.floor(rand() * n);
  const number = (): number => {
    switch (int(6)) {
      case 0:
        return int(2_000_001) - 1_000_000;
      case 1:
        return (rand() - 0.5) * 10 ** (int(40) - 20);
      case 2: { // any finite double, by its bits
        const view = new DataView(new ArrayBuffer(8));
        view.setUint32(0, int(2 ** 32));
        view.setUint32(4, int(2 ** 32));
        const n = view.getFloat64(0);
        return Number.isFinite(n) ? n : 0;
      }
      case 3:
        return pick([0, -0, 5e-324, -5e-324, 1e21, 1e-7, 1e-6, 2 ** 53, -(2 ** 53) - 2, 0.1]);
      case 4:
        return Math.round(rand() * 1e6) / 1e3;
      default:
        return rand() * 10 ** int(25);
    }
  };
  const string = (): string => {
    let s = "";
    for (let n = int(12); n > 0; n--) {
      switch (int(5)) {
        case 0:
          s += String.fromCharCode(int(0x20)); // controls
          break;
        case 1:
          s += pick(['"', "\\", "/", "\u2028", "\u2029", "\u007f", "\u0080", "'"]);
          break;
        case 2:
          s += String.fromCodePoint(0x10000 + int(0x100000)); // a surrogate pair
          break;
        case 3: { // any code point outside the surrogates
          const c = int(0x10000);
          s += String.fromCharCode(c >= 0xd800 && c <= 0xdfff ? c - 0x800 : c);
          break;
        }
        default:
          s += String.fromCharCode(0x20 + int(0x5f));
      }
    }
    return s;
  };
  const kind = depth >= 6 ? int(4) : int(6);
  switch (kind) {
    case 0:
      return number();
    case 1:
      return string();
    case 2:
      return pick([true, false, null]);
    case 3:
      return rand() < 0.5 ? [] : {};
    case 4:
      return Array.from({ length: int(6) }, () => randomJson(rand, depth + 1));
    default: {
      const object: Record<string, unknown> = {};
      for (let n = int(7); n > 0; n--) {
        object[rand() < 0.2 ? String(int(100)) : string()] = randomJson(rand, depth + 1);
      }
      return object;
    }
  }
}

Deno.test("canonicalJson writes what canonicalize writes, byte for byte, on 5,000 random values", () => {
  const seed = 8785;
  const rand = random(seed);
  for (let i = 0; i < 5000; i++) {
    const value = randomJson(rand);
    const expected = canonicalize(value);
    const actual = jcs(value);
    if (actual !== expected) {
      assert.fail(`value ${i} of seed ${seed}: ${JSON.stringify(value)}\n${actual}\n${expected}`);
    }
  }
});

Deno.test("jsonDigest is sha256 over the UTF-8 bytes, as the log records digests", async (t) => {
  await t.step('FIPS 180-2\'s "abc" and the empty text', () => {
    assert.equal(
      jsonDigest("abc"),
      "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    assert.equal(
      jsonDigest(""),
      "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
  });
  await t.step('over UTF-8: "é" as the bytes 22 c3 a9 22', () => {
    assert.equal(
      jsonDigest(canonicalJson("é", 1)),
      "sha256:f2886017e9c7abacf804b54d64787dce2b611c9544ba21f3affdd126a6e50086",
    );
  });
});
