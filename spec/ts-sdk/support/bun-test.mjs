// What the upstream test files import from "bun:test" and "bun", on Node's own
// test runner (node:test + node:assert), so that their test bodies run as
// written: describe/test/beforeAll/afterAll with bun's argument order, a
// Jest-style expect with the matchers they use, and sleep.
//
// Two deliberate differences from bun, both stricter:
// - `expect(promise).rejects.toThrow()` is checked even when the test does not
//   await it: the test waits for every such assertion before it passes.
// - sleep() and eventually()'s polling interval are scaled by TIME_SCALE
//   (QSTASH_SDK_TEST_TIME_SCALE, default 0.05): upstream waits for the cloud
//   QStash to deliver; the emulator delivers within milliseconds. Set it to 1
//   to run with upstream's timing.
import nodeTest from "node:test";
import assert from "node:assert/strict";
import { inspect, isDeepStrictEqual } from "node:util";

export const TIME_SCALE = Number(process.env.QSTASH_SDK_TEST_TIME_SCALE ?? "0.05");
if (!(TIME_SCALE > 0)) throw new Error("QSTASH_SDK_TEST_TIME_SCALE must be a positive number");

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms * TIME_SCALE));

// un-awaited `rejects` assertions of the running test
let pending = [];

const run = (fn) => async () => {
  pending = [];
  try {
    await fn();
  } finally {
    const mine = pending;
    pending = [];
    await Promise.all(mine);
  }
};

// bun: test(name, fn, options); node: test(name, options, fn)
export const test = (name, fn, options = {}) => nodeTest.it(name, options, run(fn));
export const describe = (name, fn) => nodeTest.describe(name, fn);
export const beforeAll = (fn) => nodeTest.before(run(fn));
export const afterAll = (fn) => nodeTest.after(run(fn));
export const afterEach = (fn) => nodeTest.afterEach(run(fn));

const show = (v) => inspect(v, { depth: 6, breakLength: 120 });

// Jest's toEqual: deep equality where a property whose value is undefined
// counts as absent.
const plain = (v) => {
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const out = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = plain(x);
    return out;
  }
  return v;
};

// Jest's expect.objectContaining(sample): toEqual checks only the sample's keys.
class ObjectContaining {
  constructor(sample) {
    this.sample = sample;
  }
}

const toEqual = (actual, expected) => {
  if (expected instanceof ObjectContaining) {
    assert.ok(actual && typeof actual === "object", `expected an object, got ${show(actual)}`);
    for (const [k, v] of Object.entries(expected.sample))
      assert.deepStrictEqual(plain(actual[k]), plain(v), `property ${k} of ${show(actual)}`);
    return;
  }
  assert.deepStrictEqual(plain(actual), plain(expected));
};

export const expect = (actual) => ({
  toBe: (expected) =>
    assert.ok(Object.is(actual, expected), `expected ${show(actual)} to be ${show(expected)}`),
  toEqual: (expected) => toEqual(actual, expected),
  toBeDefined: () => assert.ok(actual !== undefined, "expected a defined value"),
  toBeUndefined: () => assert.ok(actual === undefined, `expected undefined, got ${show(actual)}`),
  toBeTruthy: () => assert.ok(actual, `expected a truthy value, got ${show(actual)}`),
  toBeFalsy: () => assert.ok(!actual, `expected a falsy value, got ${show(actual)}`),
  toBeTrue: () => assert.ok(actual === true, `expected true, got ${show(actual)}`),
  toBeFalse: () => assert.ok(actual === false, `expected false, got ${show(actual)}`),
  toContain: (item) =>
    assert.ok(actual.includes(item), `expected ${show(actual)} to contain ${show(item)}`),
  // Jest's toContainEqual: some item deeply equal to `item`, as toEqual sees it
  toContainEqual: (item) =>
    assert.ok(
      actual.some((x) => isDeepStrictEqual(plain(x), plain(item))),
      `expected ${show(actual)} to contain an item equal to ${show(item)}`
    ),
  toBeGreaterThanOrEqual: (n) => assert.ok(actual >= n, `expected ${show(actual)} >= ${n}`),
  toBeGreaterThan: (n) => assert.ok(actual > n, `expected ${show(actual)} > ${n}`),
  toBeInstanceOf: (type) =>
    assert.ok(actual instanceof type, `expected an instance of ${type.name}, got ${show(actual)}`),
  toHaveLength: (n) => assert.equal(actual.length, n, `expected length ${n}, got ${show(actual)}`),
  rejects: {
    toThrow: (message) => {
      const check = (async () => {
        let error;
        try {
          await actual;
        } catch (error_) {
          error = error_;
        }
        assert.ok(error instanceof Error, `expected a rejection with an Error, got ${show(error)}`);
        if (message !== undefined)
          assert.ok(
            error.message.includes(message),
            `expected the error message ${show(error.message)} to contain ${show(message)}`
          );
      })();
      check.catch(() => {}); // handled: the test awaits it, or run() does
      pending.push(check);
      return check;
    },
  },
});
expect.objectContaining = (sample) => new ObjectContaining(sample);
