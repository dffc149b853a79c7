// Copyright (c) 2022 Upstash, Inc. MIT license: see spec/ts-sdk/LICENSE.qstash-js.
// Port of upstash/qstash-js src/client/queue.test.ts (v2.11.3, commit 81d951b):
// every case, in upstream's order, with upstream's describe and test names,
// run with Node's test runner (`node --test`) against the official SDK from
// npm (@upstash/qstash, pinned in package.json) and our emulator.
//
// The test bodies are upstream's, TypeScript types and non-null assertions
// removed. What changed:
// - imports: the SDK from npm; bun:test and the test utilities from
//   ./support (Node ports of them, see there); nanoid from ./support (a
//   dev dependency upstream); clearQueues, which upstream imports from
//   client.test.ts, copied here as it is there;
// - the client reads QSTASH_URL and QSTASH_TOKEN, set to the emulator by
//   spec/ts_sdk_tests_spec.lua; the mocked case uses a local mock server,
//   whose URL replaces upstream's http://localhost:8080.
import { Client } from "@upstash/qstash";
import { afterAll, beforeAll, describe, expect, test } from "./support/bun-test.mjs";
import { MOCK_QSTASH_SERVER_URL, mockQStashServer } from "./support/test-utils.mjs";
import { nanoid } from "./support/nanoid.mjs";

// upstream: src/client/client.test.ts
const clearQueues = async (client) => {
  const queueDetails = await client.queue().list();
  await Promise.all(
    queueDetails.map(async (q) => {
      await client.queue({ queueName: q.name }).delete();
    })
  );
};

describe("Queue", () => {
  const client = new Client({ token: process.env.QSTASH_TOKEN });

  afterAll(async () => {
    await clearQueues(client);
  });

  beforeAll(async () => {
    await clearQueues(client);
  });

  test(
    "should create a queue, verify it then remove it",
    async () => {
      const queueName = "upstash-queue";
      await client.queue({ queueName }).upsert({ parallelism: 2 });

      const queueDetails = await client.queue({ queueName }).get();
      expect(queueDetails.name).toEqual(queueName);

      await client.queue({ queueName }).delete();

      const queues = await client.queue().list();
      expect(queues.length).toBe(0);
    },
    { timeout: 20_000 }
  );

  test(
    "should create multiple queue, verify them then remove them",
    async () => {
      const queueName1 = "upstash-queue1";
      const queueName2 = "upstash-queue2";

      await client.queue({ queueName: queueName1 }).upsert({ parallelism: 2 });
      await client.queue({ queueName: queueName2 }).upsert({ parallelism: 2 });

      const queueDetails = await client.queue().list();
      expect(queueDetails.map((q) => q.name).sort()).toEqual([queueName1, queueName2].sort());

      await client.queue({ queueName: queueName1 }).delete();
      await client.queue({ queueName: queueName2 }).delete();
    },
    { timeout: 20_000 }
  );

  test(
    "should pause/resume",
    async () => {
      const name = "upstash-pause-resume-queue";
      const queue = client.queue({ queueName: name });
      await queue.upsert({ parallelism: 1 });

      let queueInfo = await queue.get();
      expect(queueInfo.paused).toBeFalse();

      await queue.pause();

      queueInfo = await queue.get();
      expect(queueInfo.paused).toBeTrue();

      await queue.resume();

      queueInfo = await queue.get();
      expect(queueInfo.paused).toBeFalse();

      await queue.upsert({ paused: true });

      queueInfo = await queue.get();
      expect(queueInfo.paused).toBeTrue();

      await queue.upsert({ paused: false });

      queueInfo = await queue.get();
      expect(queueInfo.paused).toBeFalse();
    },
    { timeout: 20_000 }
  );

  test("should enqueue with redact fields", async () => {
    const token = process.env.QSTASH_TOKEN;
    await mockQStashServer({
      execute: async () => {
        const client = new Client({ baseUrl: MOCK_QSTASH_SERVER_URL, token });
        await client.queue({ queueName: "test-queue" }).enqueueJSON({
          url: "https://example.com/",
          body: { hello: "world" },
          redact: { body: true, header: ["Authorization"] },
        });
      },
      responseFields: {
        body: { messageId: nanoid() },
        status: 200,
      },
      receivesRequest: {
        method: "POST",
        token,
        body: { hello: "world" },
        url: `${MOCK_QSTASH_SERVER_URL}/v2/enqueue/test-queue/https://example.com/`,
      },
      validateRequest: (request) => {
        expect(request.headers.get("Upstash-Redact-Fields")).toBe("body,header[Authorization]");
      },
    });
  });
});
