// Copyright (c) 2022 Upstash, Inc. MIT license: see spec/ts-sdk/LICENSE.qstash-js.
// Port of the dev-server integration tests of upstash/qstash-js
// src/dev-server/index.test.ts (v2.11.3, commit 81d951b): the file's
// credential save/restore hooks and its describe("dev server integration"),
// every case, with upstream's names, run with Node's test runner against the
// official SDK from npm (@upstash/qstash, pinned in package.json) with
// `devMode: true` and our emulator as the dev server. The file's other
// describes test SDK internals (env parsing, singletons, spies on private
// modules) that the npm package does not export and that involve no server.
//
// The test bodies are upstream's, TypeScript types removed. What changed:
// - imports: the SDK from npm; bun:test from ./support;
// - INTEGRATION_PORT: upstream boots QStash's dev binary there; here it is the
//   port of the emulator that spec/ts_sdk_tests_spec.lua started (QSTASH_SDK_TEST_DEV_PORT).
//   With devMode the SDK first asks GET /v2/keys on that port with the dev
//   token and, as it finds its dev keys there, starts and downloads nothing:
//   stopDevServer() (not exported by the package) has nothing to stop and is
//   left out;
// - destinations: `https://example.com` is EXAMPLE_COM, a local server that answers 200.
import { Client } from "@upstash/qstash";
import { afterAll, beforeAll, describe, expect, test } from "./support/bun-test.mjs";
import { startDestination } from "./support/destination.mjs";

const destination = await startDestination({ status: 200 });
const EXAMPLE_COM = destination.url;
afterAll(() => destination.close());

const INTEGRATION_PORT = process.env.QSTASH_SDK_TEST_DEV_PORT;
if (!INTEGRATION_PORT) throw new Error("QSTASH_SDK_TEST_DEV_PORT (the emulator's port) is not set");

// Dev mode must work without any real credentials — save and restore so other
// test files running in the same process are not affected.
const savedToken = process.env.QSTASH_TOKEN;
const savedCurrentKey = process.env.QSTASH_CURRENT_SIGNING_KEY;
const savedNextKey = process.env.QSTASH_NEXT_SIGNING_KEY;

beforeAll(() => {
  delete process.env.QSTASH_TOKEN;
  delete process.env.QSTASH_CURRENT_SIGNING_KEY;
  delete process.env.QSTASH_NEXT_SIGNING_KEY;
});

afterAll(() => {
  if (savedToken !== undefined) process.env.QSTASH_TOKEN = savedToken;
  if (savedCurrentKey !== undefined) process.env.QSTASH_CURRENT_SIGNING_KEY = savedCurrentKey;
  if (savedNextKey !== undefined) process.env.QSTASH_NEXT_SIGNING_KEY = savedNextKey;
});

// ── Integration tests (require dev server) ─────────────────────────────

describe("dev server integration", () => {
  let client;
  const savedPort = process.env.QSTASH_DEV_PORT;

  beforeAll(async () => {
    process.env.QSTASH_DEV_PORT = INTEGRATION_PORT;
    client = new Client({ devMode: true });
    // Ensure server is up before running tests
    await client.publish({ url: `${EXAMPLE_COM}`, body: "warmup" });
  });

  afterAll(() => {
    if (savedPort === undefined) delete process.env.QSTASH_DEV_PORT;
    else process.env.QSTASH_DEV_PORT = savedPort;
  });

  test(
    "publish works with no credentials and devMode: true",
    async () => {
      const result = await client.publishJSON({
        url: `${EXAMPLE_COM}`,
        body: { test: true },
      });
      expect(result.messageId).toBeDefined();
    },
    { timeout: 15_000 }
  );

  test(
    "batch publish works",
    async () => {
      const result = await client.batchJSON([
        { url: `${EXAMPLE_COM}/1`, body: { test: 1 } },
        { url: `${EXAMPLE_COM}/2`, body: { test: 2 } },
      ]);
      const BATCH_SIZE = 2;
      expect(result).toHaveLength(BATCH_SIZE);
      expect(result[0].messageId).toBeDefined();
      expect(result[1].messageId).toBeDefined();
    },
    { timeout: 15_000 }
  );

  test(
    "queue enqueue works",
    async () => {
      const queue = client.queue({ queueName: "test-queue" });
      const result = await queue.enqueue({
        url: `${EXAMPLE_COM}`,
        body: "queued message",
      });
      expect(result.messageId).toBeDefined();
    },
    { timeout: 15_000 }
  );
});
