// Copyright (c) 2022 Upstash, Inc. MIT license: see spec/ts-sdk/LICENSE.qstash-js.
// Port of the batch and queue cases of upstash/qstash-js src/client/client.test.ts
// (v2.11.3, commit 81d951b), in upstream's order, with upstream's describe
// and test names, run with Node's test runner (`node --test`) against the
// official SDK from npm (@upstash/qstash, pinned in package.json) and our
// emulator: "E2E Batch" (both cases), "E2E Queue" (all four: an enqueue and
// three batches with a queueName, to a URL group and a URL) and, of "flow
// control", "should batch messages with flow control".
//
// The test bodies are upstream's, TypeScript types and non-null assertions
// removed. What changed:
// - imports: the SDK from npm; bun:test, nanoid and the test utilities from
//   ./support (Node ports of them, see there);
// - destinations: https://example.com (and E2E Queue's
//   https://oz.requestcatcher.com/?foo=bar) is a local server that answers
//   200 after holding each request for a while, as a remote host takes a
//   while: a message is readable with messages.get only until its delivery
//   is done;
// - the client reads QSTASH_URL and QSTASH_TOKEN, set to the emulator by
//   spec/ts_sdk_tests_spec.lua; the mocked case uses the local mock server
//   (upstream: http://localhost:8080).
import { Client } from "@upstash/qstash";
import { afterAll, describe, expect, test } from "./support/bun-test.mjs";
import { MOCK_QSTASH_SERVER_URL, mockQStashServer } from "./support/test-utils.mjs";
import { startDestination } from "./support/destination.mjs";
import { nanoid } from "./support/nanoid.mjs";

const destination = await startDestination({ status: 200, holdMs: 5000 });
const EXAMPLE_COM = destination.url;
afterAll(() => destination.close());

describe("E2E Batch", () => {
  test("should override global headers", async () => {
    const client = new Client({
      token: process.env.QSTASH_TOKEN,
      headers: {
        "test-header": "value",
        "test-header-2": "value-2",
      },
    });
    const result = await client.batch([
      {
        url: `${EXAMPLE_COM}/1`,
        headers: {
          "Test-Header": "override-value-1",
          "stays-same": "same",
        },
      },
      {
        url: `${EXAMPLE_COM}/2`,
        headers: {
          "Test-Header": "override-value-2",
          "stays-same": "same",
        },
      },
    ]);

    const verifiedMessage1 = await client.messages.get(result[0].messageId);
    const messageHeaders1 = new Headers(verifiedMessage1.header);

    const verifiedMessage2 = await client.messages.get(result[1].messageId);
    const messageHeaders2 = new Headers(verifiedMessage2.header);

    expect(messageHeaders1.get("test-header")).toEqual("override-value-1");
    expect(messageHeaders2.get("test-header")).toEqual("override-value-2");

    expect(messageHeaders1.get("stays-same")).toEqual("same");
    expect(messageHeaders2.get("stays-same")).toEqual("same");

    expect(messageHeaders1.get("test-header-2")).toEqual("value-2");
    expect(messageHeaders2.get("test-header-2")).toEqual("value-2");
  });

  test("should override global headers with batchJSON", async () => {
    const client = new Client({
      token: process.env.QSTASH_TOKEN,
      headers: {
        "test-header": "value",
        "test-header-2": "value-2",
      },
    });
    const result = await client.batchJSON([
      {
        url: `${EXAMPLE_COM}/1`,
        headers: {
          "Test-Header": "override-value-1",
          "stays-same": "same",
        },
      },
      {
        url: `${EXAMPLE_COM}/2`,
        headers: {
          "Test-Header": "override-value-2",
          "stays-same": "same",
        },
      },
    ]);

    const verifiedMessage1 = await client.messages.get(result[0].messageId);
    const messageHeaders1 = new Headers(verifiedMessage1.header);

    const verifiedMessage2 = await client.messages.get(result[1].messageId);
    const messageHeaders2 = new Headers(verifiedMessage2.header);

    expect(messageHeaders1.get("test-header")).toEqual("override-value-1");
    expect(messageHeaders2.get("test-header")).toEqual("override-value-2");

    expect(messageHeaders1.get("stays-same")).toEqual("same");
    expect(messageHeaders2.get("stays-same")).toEqual("same");

    expect(messageHeaders1.get("test-header-2")).toEqual("value-2");
    expect(messageHeaders2.get("test-header-2")).toEqual("value-2");
  });
});

describe("E2E Queue", () => {
  const client = new Client({ token: process.env.QSTASH_TOKEN });

  afterAll(async () => {
    const [queueDetails, urlGroups] = await Promise.all([
      client.queue().list(),
      client.urlGroups.list(),
    ]);

    await Promise.all([
      ...urlGroups.map(async (t) => {
        await client.urlGroups.delete(t.name);
      }),

      ...queueDetails.map(async (q) => {
        await client.queue({ queueName: q.name }).delete();
      }),
    ]);
  });

  test(
    "should create a queue, verify it then remove it",
    async () => {
      const queueName = nanoid();
      await client.queue({ queueName }).upsert({ parallelism: 1 });

      const queueDetails = await client.queue({ queueName }).enqueue({
        url: `${EXAMPLE_COM}/?foo=bar`,
        body: JSON.stringify({ hello: "world" }),
        headers: {
          "test-header": "test-value",
          "Upstash-Forward-bypass-tunnel-reminder": "client-test",
        },
      });

      const verifiedMessage = await client.messages.get(queueDetails.messageId);
      expect(verifiedMessage.queueName).toBe(queueName);
      await client.queue({ queueName }).delete();
    },
    { timeout: 35_000 }
  );

  test(
    "should batch items to urlGroup and url with queueName",
    async () => {
      const queueName = nanoid();
      const urlGroup = nanoid();

      await client.queue({ queueName }).upsert({ parallelism: 1 });
      await client.urlGroups.addEndpoints({
        name: urlGroup,
        endpoints: [{ url: `${EXAMPLE_COM}/`, name: "first" }],
      });

      const result = await client.batch([
        {
          urlGroup: urlGroup,
          body: "message",
          queueName,
        },
        {
          url: `${EXAMPLE_COM}/`,
          queueName,
        },
      ]);
      expect(Array.isArray(result)).toBeTrue();
      await client.queue({ queueName }).delete();
    },
    { timeout: 35_000 }
  );

  test(
    "should return batch result as array when there is a single item",
    async () => {
      const queueName = nanoid();
      const urlGroup = nanoid();

      await client.queue({ queueName }).upsert({ parallelism: 1 });
      await client.urlGroups.addEndpoints({
        name: urlGroup,
        endpoints: [{ url: `${EXAMPLE_COM}/`, name: "first" }],
      });

      const result = await client.batch([
        {
          urlGroup: urlGroup,
          body: "message",
          queueName,
        },
      ]);
      expect(Array.isArray(result)).toBeTrue();
      await client.queue({ queueName }).delete();
    },
    { timeout: 35_000 }
  );

  test(
    "should batch json items to urlGroup and url with queueName",
    async () => {
      const queueName = nanoid();
      const urlGroup = nanoid();

      await client.queue({ queueName }).upsert({ parallelism: 1 });
      await client.urlGroups.addEndpoints({
        name: urlGroup,
        endpoints: [{ url: `${EXAMPLE_COM}/`, name: "first" }],
      });

      await client.batchJSON([
        {
          urlGroup: urlGroup,
          body: "message",
          queueName,
        },
        {
          url: `${EXAMPLE_COM}/`,
          queueName,
        },
      ]);
      await client.queue({ queueName }).delete();
    },
    { timeout: 35_000 }
  );
});

describe("flow control", () => {
  const token = nanoid();
  const client = new Client({
    baseUrl: MOCK_QSTASH_SERVER_URL,
    token,
    enableTelemetry: false,
  });

  test("should batch messages with flow control", async () => {
    const flowControlKeyOne = nanoid();
    const flowControlKeyTwo = nanoid();
    const flowControlKeyThree = nanoid();
    await mockQStashServer({
      execute: async () => {
        await client.batch([
          {
            url: "https://example.com/one",
            flowControl: {
              key: flowControlKeyOne,
              ratePerSecond: 10,
            },
            body: "some-body",
            retryDelay: "pow(retried, 2) * 1000",
          },
          {
            url: "https://example.com/two",
            flowControl: {
              key: flowControlKeyTwo,
              parallelism: 5,
            },
            method: "GET",
          },
          {
            url: "https://example.com/three",
            flowControl: {
              key: flowControlKeyThree,
              parallelism: 5,
              rate: 10,
              period: "1m",
            },
            method: "PATCH",
          },
        ]);
      },
      responseFields: {
        body: { messageId: "msgId" },
        status: 200,
      },
      receivesRequest: {
        method: "POST",
        token,
        url: `${MOCK_QSTASH_SERVER_URL}/v2/batch`,
        body: [
          {
            body: "some-body",
            destination: "https://example.com/one",
            headers: {
              "upstash-flow-control-key": flowControlKeyOne,
              "upstash-flow-control-value": "rate=10",
              "upstash-method": "POST",
              "upstash-retry-delay": "pow(retried, 2) * 1000",
            },
          },
          {
            destination: "https://example.com/two",
            headers: {
              "upstash-flow-control-key": flowControlKeyTwo,
              "upstash-flow-control-value": "parallelism=5",
              "upstash-method": "GET",
            },
          },
          {
            destination: "https://example.com/three",
            headers: {
              "upstash-flow-control-key": flowControlKeyThree,
              "upstash-flow-control-value": "parallelism=5, rate=10, period=1m",
              "upstash-method": "PATCH",
            },
          },
        ],
        headers: {
          "Upstash-Flow-Control-Key": null,
          "Upstash-Flow-Control-Value": null,
        },
      },
    });
  });
});
