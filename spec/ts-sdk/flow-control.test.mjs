// Copyright (c) 2022 Upstash, Inc. MIT license: see spec/ts-sdk/LICENSE.qstash-js.
// Port of upstash/qstash-js src/client/flow-control.test.ts (v2.11.3, commit 81d951b):
// every case, in upstream's order, with upstream's describe and test names,
// run with Node's test runner (`node --test`) against the official SDK from
// npm (@upstash/qstash, pinned in package.json) and our emulator.
//
// The test bodies are upstream's, TypeScript types and non-null assertions
// removed. What changed:
// - imports: the SDK from npm; bun:test and the test utilities from
//   ./support (Node ports of them, see there);
// - destinations: mock.httpstatus.io (upstream's `/200?sleep=30000`, a host
//   that holds each request 30 s) is a local server that holds each request
//   30 s too, so that each test's message is still there to delete at its end;
// - the client reads QSTASH_URL and QSTASH_TOKEN, set to the emulator by
//   spec/ts_sdk_tests_spec.lua; the mocked case uses a local mock server.
import { Client } from "@upstash/qstash";
import { afterAll, describe, expect, test } from "./support/bun-test.mjs";
import { MOCK_QSTASH_SERVER_URL, mockQStashServer, expectToReject } from "./support/test-utils.mjs";
import { eventually } from "./support/eventually.mjs";
import { startDestination } from "./support/destination.mjs";

const destination = await startDestination({ status: 200, holdMs: 30000 });
const MOCK_HTTPSTATUS_IO = destination.url;
afterAll(() => destination.close());

describe("FlowControl empty id guard", () => {
  test("should not send request when get is called with an empty string", async () => {
    await mockQStashServer({
      execute: async () => {
        const mockClient = new Client({
          token: "mock-token",
          baseUrl: MOCK_QSTASH_SERVER_URL,
        });
        await expectToReject(
          () => mockClient.flowControl.get(""),
          "Flow control key cannot be empty"
        );
      },
      responseFields: { body: {}, status: 200 },
      receivesRequest: false,
    });
  });
});

describe("FlowControl", () => {
  const client = new Client({ token: process.env.QSTASH_TOKEN });

  test(
    "should publish with flow control, then get flow control info",
    async () => {
      const flowControlKey = `fc-info-${Date.now()}`;
      // Publish a message with flow control to ensure the key exists
      const { messageId } = await client.publish({
        url: `${MOCK_HTTPSTATUS_IO}/200?sleep=30000`,
        body: "hello",
        flowControl: {
          key: flowControlKey,
          parallelism: 5,
          rate: 10,
          period: "1m",
        },
      });

      // Get a single flow control by key
      const single = await client.flowControl.get(flowControlKey);
      expect(single.flowControlKey).toBe(flowControlKey);
      expect(typeof single.waitListSize).toBe("number");
      expect(typeof single.parallelismMax).toBe("number");
      expect(typeof single.parallelismCount).toBe("number");

      // Clean up the published message
      // eslint-disable-next-line @typescript-eslint/no-deprecated
      await client.messages.delete(messageId);
    },
    { timeout: 30_000 }
  );

  test(
    "should get global parallelism info",
    async () => {
      const info = await client.flowControl.getGlobalParallelism();
      expect(typeof info.parallelismMax).toBe("number");
      expect(typeof info.parallelismCount).toBe("number");
    },
    { timeout: 20_000 }
  );

  test(
    "should pause and resume a flow control key",
    async () => {
      const flowControlKey = `fc-pause-${Date.now()}`;
      // Publish a message with flow control to ensure the key exists
      const { messageId } = await client.publish({
        url: `${MOCK_HTTPSTATUS_IO}/200?sleep=30000`,
        body: "hello",
        flowControl: {
          key: flowControlKey,
          parallelism: 5,
          rate: 10,
          period: "1m",
        },
      });

      // Pause the flow control key
      await client.flowControl.pause(flowControlKey);

      // Verify it's paused
      const paused = await client.flowControl.get(flowControlKey);
      expect(paused.isPaused).toBe(true);

      // Resume the flow control key
      await client.flowControl.resume(flowControlKey);

      // Verify it's resumed
      const resumed = await client.flowControl.get(flowControlKey);
      expect(resumed.isPaused).toBe(false);

      // Clean up
      // eslint-disable-next-line @typescript-eslint/no-deprecated
      await client.messages.delete(messageId);
    },
    { timeout: 30_000 }
  );

  test(
    "should pin and unpin a flow control key configuration",
    async () => {
      const flowControlKey = `fc-pin-${Date.now()}`;
      // Publish a message with flow control to ensure the key exists
      const { messageId } = await client.publish({
        url: `${MOCK_HTTPSTATUS_IO}/200?sleep=30000`,
        body: "hello",
        flowControl: {
          key: flowControlKey,
          parallelism: 5,
          rate: 10,
          period: "1m",
        },
      });

      // Pin the configuration
      await client.flowControl.pin(flowControlKey, {
        parallelism: 3,
        rate: 20,
        period: 120,
      });

      // Verify it's pinned
      const pinned = await client.flowControl.get(flowControlKey);
      expect(pinned.isPinnedParallelism).toBe(true);
      expect(pinned.isPinnedRate).toBe(true);
      expect(pinned.parallelismMax).toBe(3);
      expect(pinned.rateMax).toBe(20);
      expect(pinned.ratePeriod).toBe(120);

      // Unpin the configuration
      await client.flowControl.unpin(flowControlKey, {
        parallelism: true,
        rate: true,
      });

      // Verify it's unpinned
      const unpinned = await client.flowControl.get(flowControlKey);
      expect(unpinned.isPinnedParallelism).toBe(false);
      expect(unpinned.isPinnedRate).toBe(false);

      // Clean up
      // eslint-disable-next-line @typescript-eslint/no-deprecated
      await client.messages.delete(messageId);
    },
    { timeout: 30_000 }
  );

  test(
    "should unpin a single field while keeping the other pinned",
    async () => {
      const flowControlKey = `fc-unpin-single-${Date.now()}`;
      const { messageId } = await client.publish({
        url: `${MOCK_HTTPSTATUS_IO}/200?sleep=30000`,
        body: "hello",
        flowControl: {
          key: flowControlKey,
          parallelism: 5,
          rate: 10,
          period: "1m",
        },
      });

      // Pin both parallelism and rate
      await client.flowControl.pin(flowControlKey, {
        parallelism: 3,
        rate: 20,
        period: 120,
      });

      const pinned = await client.flowControl.get(flowControlKey);
      expect(pinned.isPinnedParallelism).toBe(true);
      expect(pinned.isPinnedRate).toBe(true);

      // Unpin only parallelism
      await client.flowControl.unpin(flowControlKey, { parallelism: true });

      const partial = await client.flowControl.get(flowControlKey);
      expect(partial.isPinnedParallelism).toBe(false);
      expect(partial.isPinnedRate).toBe(true);

      // Clean up
      // eslint-disable-next-line @typescript-eslint/no-deprecated
      await client.messages.delete(messageId);
    },
    { timeout: 30_000 }
  );

  test(
    "should reset rate for a flow control key",
    async () => {
      const flowControlKey = `fc-reset-${Date.now()}`;
      // Publish a message with flow control to ensure the key exists
      const { messageId } = await client.publish({
        url: `${MOCK_HTTPSTATUS_IO}/200?sleep=30000`,
        body: "hello",
        flowControl: {
          key: flowControlKey,
          parallelism: 5,
          rate: 10,
          period: "1m",
        },
      });

      // Pause delivery so in-flight dispatches don't keep consuming the rate
      // after we reset it (otherwise rateCount creeps back up).
      await client.flowControl.pause(flowControlKey);

      // Reset the rate and verify it was cleared. We reset inside the retry loop
      // so the reset takes effect even if the pause/reset are eventually consistent.
      await eventually(
        async () => {
          await client.flowControl.resetRate(flowControlKey);
          const info = await client.flowControl.get(flowControlKey);
          expect(info.rateCount).toBe(0);
        },
        { timeout: 15_000, interval: 1000 }
      );

      // Clean up
      // eslint-disable-next-line @typescript-eslint/no-deprecated
      await client.messages.delete(messageId);
    },
    { timeout: 30_000 }
  );
});
