// Copyright (c) 2022 Upstash, Inc. MIT license: see spec/ts-sdk/LICENSE.qstash-js.
// Port of upstash/qstash-js src/client/messages.test.ts (v2.11.3, commit 81d951b):
// every case, in upstream's order, with upstream's describe and test names,
// run with Node's test runner (`node --test`) against the official SDK from
// npm (@upstash/qstash, pinned in package.json) and our emulator.
//
// The test bodies are upstream's, TypeScript types removed. What changed:
// - imports: the SDK from npm; bun:test and the test utilities from
//   ./support (Node ports of them, see there);
// - destinations: the public hosts upstream publishes to (example.com,
//   example.org, httpbin.org, mock.httpstatus.io) are one local server that
//   answers 200 after holding each request for a while, as a remote host
//   takes a while: a message is readable with messages.get only until its
//   delivery is done. example.com is reached as 127.0.0.1, example.org as
//   localhost, so that the host filter has two hosts to tell apart;
// - the client reads QSTASH_URL and QSTASH_TOKEN, set to the emulator by
//   spec/ts_sdk_tests_spec.lua; the mocked cases use a local mock server.
import { Client } from "@upstash/qstash";
import { afterAll, beforeAll, describe, expect, test } from "./support/bun-test.mjs";
import { MOCK_QSTASH_SERVER_URL, mockQStashServer, expectToReject } from "./support/test-utils.mjs";
import { startDestination } from "./support/destination.mjs";

const destination = await startDestination({ status: 200, holdMs: 5000 });
const EXAMPLE_COM = destination.url;
const EXAMPLE_ORG = `http://localhost:${destination.port}`;
const EXAMPLE_ORG_HOST = "localhost";
const HTTPBIN_ORG = destination.url;
const MOCK_HTTPSTATUS_IO = destination.url;
afterAll(() => destination.close());

// Updated to use constants for magic numbers
const SECONDS_IN_A_DAY = 24 * 60 * 60;

describe("Messages empty id guard", () => {
  test("should not send request when get is called with an empty string", async () => {
    await mockQStashServer({
      execute: async () => {
        const mockClient = new Client({
          token: "mock-token",
          baseUrl: MOCK_QSTASH_SERVER_URL,
        });
        await expectToReject(() => mockClient.messages.get(""), "Message id cannot be empty");
      },
      responseFields: { body: {}, status: 200 },
      receivesRequest: false,
    });
  });

  test("should throw a QstashError (not a TypeError) when get is called with undefined", async () => {
    await mockQStashServer({
      execute: async () => {
        const mockClient = new Client({
          token: "mock-token",
          baseUrl: MOCK_QSTASH_SERVER_URL,
        });
        // A JS consumer may accidentally pass a missing value; it should fail
        // with the intended "cannot be empty" error, not a TypeError.
        await expectToReject(
          () => mockClient.messages.get(undefined),
          "Message id cannot be empty"
        );
      },
      responseFields: { body: {}, status: 200 },
      receivesRequest: false,
    });
  });

  test("should not send request when cancel is called with an empty string", async () => {
    await mockQStashServer({
      execute: async () => {
        const mockClient = new Client({
          token: "mock-token",
          baseUrl: MOCK_QSTASH_SERVER_URL,
        });
        await expectToReject(() => mockClient.messages.cancel(""), "Message id cannot be empty");
      },
      responseFields: { body: {}, status: 200 },
      receivesRequest: false,
    });
  });

  test("should not send request when delete is called with an empty string", async () => {
    await mockQStashServer({
      execute: async () => {
        const mockClient = new Client({
          token: "mock-token",
          baseUrl: MOCK_QSTASH_SERVER_URL,
        });
        await expectToReject(
          // eslint-disable-next-line @typescript-eslint/no-deprecated
          () => mockClient.messages.delete(""),
          "Message id cannot be empty"
        );
      },
      responseFields: { body: {}, status: 200 },
      receivesRequest: false,
    });
  });
});

describe("Messages", () => {
  const client = new Client({ token: process.env.QSTASH_TOKEN });

  beforeAll(async () => {
    await client.messages.cancel({ all: true });
  });

  test(
    "should send message, cancel it then verify cancel",
    async () => {
      const retryDelay = "1000 * retried";
      const message = await client.publishJSON({
        url: `${EXAMPLE_COM}`,
        body: { hello: "world" },
        headers: {
          "test-header": "test-value",
          "Upstash-Forward-bypass-tunnel-reminder": "client-test",
        },
        delay: 60,
        retries: 5,
        callback: `${EXAMPLE_COM}?foo=bar`,
        failureCallback: `${EXAMPLE_COM}?bar=baz`,
        method: "GET",
        retryDelay,
      });

      const verifiedMessage = await client.messages.get(message.messageId);
      expect(new Headers(verifiedMessage.header).get("Test-Header")).toBe("test-value");
      expect(verifiedMessage.retryDelayExpression).toBe(retryDelay);
      await client.messages.cancel(message.messageId);
    },
    { timeout: 20_000 }
  );

  test(
    "should send message with timeout",
    async () => {
      const message = await client.publishJSON({
        url: `${EXAMPLE_COM}`,
        body: { hello: "world" },
        timeout: 90,
      });

      const verifiedMessage = await client.messages.get(message.messageId);
      expect(verifiedMessage.messageId).toBeTruthy();
      await client.messages.cancel(message.messageId);
    },
    { timeout: 20_000 }
  );

  test(
    "should cancel many and all",
    async () => {
      const messages = await client.batchJSON([
        {
          url: `${EXAMPLE_COM}`,
          body: { hello: "world" },
          timeout: 90,
          delay: 10,
        },
        {
          url: `${EXAMPLE_COM}`,
          body: { hello: "world" },
          timeout: 90,
          delay: 10,
        },
        {
          url: `${EXAMPLE_COM}`,
          body: { hello: "world" },
          timeout: 90,
          delay: "10d",
        },
      ]);

      expect(messages.length).toBe(3);

      const cancelled = await client.messages.cancel([
        messages[0].messageId,
        messages[1].messageId,
      ]);

      expect(cancelled.cancelled).toBe(2);

      const cancelledAll = await client.messages.cancel({ all: true });
      expect(cancelledAll.cancelled).toBe(1);
    },
    { timeout: 20_000 }
  );

  test("should create message with flow control", async () => {
    const parallelism = 10;
    const ratePerSecond = 5;
    const period = "1d";
    const { messageId } = await client.publish({
      url: `${MOCK_HTTPSTATUS_IO}/200?sleep=30000`,
      body: "hello",
      delay: "10d",
      flowControl: {
        key: "flow-key",
        parallelism,
        ratePerSecond,
        period,
      },
    });

    const message = await client.messages.get(messageId);

    expect(message.flowControlKey).toBe("flow-key");
    expect(message.parallelism).toBe(parallelism);
    expect(message.rate).toBe(ratePerSecond);

    const dayInSeconds = SECONDS_IN_A_DAY;
    expect(message.period).toBe(dayInSeconds);
  });

  test(
    "should cancel all messages with flowControlKey filter",
    async () => {
      const flowControlKey = "flow-key";
      // Create messages with the same flow control key
      await client.publish({
        url: `${HTTPBIN_ORG}/status/200`,
        body: "hello",
        delay: "10d",
        flowControl: {
          key: flowControlKey,
          parallelism: 5,
          ratePerSecond: 10,
        },
      });

      await client.publish({
        url: `${HTTPBIN_ORG}/status/200`,
        body: "hello",
        delay: "10d",
        flowControl: {
          key: flowControlKey,
          parallelism: 5,
          ratePerSecond: 10,
        },
      });

      // Create a message with a different flow control key
      const message3 = await client.publish({
        url: `${HTTPBIN_ORG}/status/200`,
        body: "hello",
        delay: "10d",
        flowControl: {
          key: "different-flow-key",
          parallelism: 5,
          ratePerSecond: 10,
        },
      });

      // Cancel all messages with the specific flowControlKey
      const result = await client.messages.cancel({ filter: { flowControlKey } });

      // Should cancel at least the 2 messages with the matching flowControlKey
      expect(result.cancelled).toBeGreaterThanOrEqual(2);

      await client.messages.cancel(message3.messageId);
    },
    { timeout: 20_000 }
  );

  test(
    "should cancel all messages using all: true",
    async () => {
      await client.publish({
        url: `${HTTPBIN_ORG}/status/200`,
        body: "hello",
        delay: "10d",
      });

      const cancelled = await client.messages.cancel({ all: true });

      expect(cancelled.cancelled).toBeGreaterThanOrEqual(1);
    },
    { timeout: 20_000 }
  );

  test(
    "should cancel messages by multiple flowControlKeys (OR semantics)",
    async () => {
      const keyA = `cancel-multi-fc-a-${Date.now()}`;
      const keyB = `cancel-multi-fc-b-${Date.now()}`;
      const keyC = `cancel-multi-fc-c-${Date.now()}`;

      for (const key of [keyA, keyB, keyC]) {
        await client.publish({
          url: `${HTTPBIN_ORG}/status/200`,
          body: "hello",
          delay: "10d",
          flowControl: { key, parallelism: 1 },
        });
      }

      // Cancelling [A, B] should match the A and B messages but NOT C.
      const result = await client.messages.cancel({
        filter: { flowControlKey: [keyA, keyB] },
      });
      expect(result.cancelled).toBe(2);

      // C survived and can still be cancelled on its own.
      const remaining = await client.messages.cancel({ filter: { flowControlKey: keyC } });
      expect(remaining.cancelled).toBe(1);
    },
    { timeout: 20_000 }
  );

  test(
    "should cancel messages by destination path (single and multi-value)",
    async () => {
      const stamp = Date.now();
      const pathA = `/cancel-path-a-${stamp}`;
      const pathB = `/cancel-path-b-${stamp}`;
      const pathC = `/cancel-path-c-${stamp}`;

      for (const path of [pathA, pathB, pathC]) {
        await client.publish({ url: `${EXAMPLE_COM}${path}`, body: "hello", delay: "10d" });
      }

      // Unique paths make this deterministic: [A, B] cancels exactly two.
      const result = await client.messages.cancel({ filter: { path: [pathA, pathB] } });
      expect(result.cancelled).toBe(2);

      // C is untouched and matched by its own path.
      const remaining = await client.messages.cancel({ filter: { path: pathC } });
      expect(remaining.cancelled).toBe(1);
    },
    { timeout: 20_000 }
  );

  test(
    "should cancel messages by destination host (host discriminates)",
    async () => {
      const stamp = Date.now();
      const comPath = `/cancel-host-com-${stamp}`;
      const orgPath = `/cancel-host-org-${stamp}`;

      await client.publish({ url: `${EXAMPLE_COM}${comPath}`, body: "hello", delay: "10d" });
      await client.publish({ url: `${EXAMPLE_ORG}${orgPath}`, body: "hello", delay: "10d" });

      // Cancelling host example.org must not touch the example.com message.
      const orgResult = await client.messages.cancel({ filter: { host: EXAMPLE_ORG_HOST } });
      expect(orgResult.cancelled).toBeGreaterThanOrEqual(1);

      // The example.com message survived — proven by cancelling it via its path.
      const comResult = await client.messages.cancel({ filter: { path: comPath } });
      expect(comResult.cancelled).toBe(1);
    },
    { timeout: 20_000 }
  );

  test(
    "should respect count: 1 with all: true",
    async () => {
      await client.batchJSON([
        { url: `${HTTPBIN_ORG}/status/200`, body: { n: 1 }, delay: "10d" },
        { url: `${HTTPBIN_ORG}/status/200`, body: { n: 2 }, delay: "10d" },
      ]);

      const result = await client.messages.cancel({ all: true, count: 1 });
      expect(result.cancelled).toBe(1);

      // clean up remaining
      await client.messages.cancel({ all: true });
    },
    { timeout: 20_000 }
  );

  test(
    "should respect count: 1 with filter",
    async () => {
      const label = `cancel-count-filter-${Date.now()}`;
      await client.batchJSON([
        { url: `${HTTPBIN_ORG}/status/200`, body: { n: 1 }, delay: "10d", label },
        { url: `${HTTPBIN_ORG}/status/200`, body: { n: 2 }, delay: "10d", label },
      ]);

      const result = await client.messages.cancel({ filter: { label }, count: 1 });
      expect(result.cancelled).toBe(1);

      // clean up remaining
      await client.messages.cancel({ filter: { label } });
    },
    { timeout: 20_000 }
  );

  test(
    "should return cancelled count when cancelling a single message",
    async () => {
      const message = await client.publish({
        url: `${HTTPBIN_ORG}/status/200`,
        body: "hello",
        delay: "10d",
      });

      const result = await client.messages.cancel(message.messageId);

      expect(result).toBeDefined();
      expect(typeof result.cancelled).toBe("number");
      expect(result.cancelled).toBe(1);
    },
    { timeout: 20_000 }
  );
});
