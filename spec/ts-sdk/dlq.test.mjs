// Copyright (c) 2022 Upstash, Inc. MIT license: see spec/ts-sdk/LICENSE.qstash-js.
// Port of upstash/qstash-js src/client/dlq.test.ts (v2.11.3, commit 81d951b):
// every case, in upstream's order, with upstream's describe and test names,
// run with Node's test runner (`node --test`) against the official SDK from
// npm (@upstash/qstash, pinned in package.json) and our emulator.
//
// The test bodies are upstream's, TypeScript types removed. What changed:
// - imports: the SDK from npm; bun:test, bun and the test utilities from
//   ./support (Node ports of them, see there);
// - destinations: `https://example.com` (a public host that makes every
//   delivery fail) is EXAMPLE_COM below, a local server that answers 500;
// - the client reads QSTASH_URL and QSTASH_TOKEN, set to the emulator by
//   spec/ts_sdk_tests_spec.lua; the mocked cases use a local mock server.
import { Client } from "@upstash/qstash";
import { afterAll, beforeAll, describe, expect, sleep, test } from "./support/bun-test.mjs";
import { eventually } from "./support/eventually.mjs";
import { MOCK_QSTASH_SERVER_URL, mockQStashServer, expectToReject } from "./support/test-utils.mjs";
import { startDestination } from "./support/destination.mjs";

// every delivery fails: messages published with retries: 0 land in the DLQ
const destination = await startDestination({ status: 500 });
const EXAMPLE_COM = destination.url;
afterAll(() => destination.close());

// Updated to use constants for magic numbers
const SECONDS_IN_A_DAY = 24 * 60 * 60;

describe("DLQ", () => {
  const client = new Client({ token: process.env.QSTASH_TOKEN });
  const urlGroup = "someUrlGroup";

  beforeAll(async () => {
    await client.urlGroups.addEndpoints({
      name: urlGroup,
      endpoints: [
        {
          name: "myEndpoint",
          url: `${EXAMPLE_COM}/789/?asdasd=ooo`,
        },
      ],
    });
  });

  afterAll(async () => {
    await client.urlGroups.delete(urlGroup);

    const dlqLogs = await client.dlq.listMessages();
    if (dlqLogs.messages.length === 0) return;
    await client.dlq.delete({ dlqIds: dlqLogs.messages.map((dlq) => dlq.dlqId) });
  });

  test(
    "should force message to DLQ then check if items have a match",
    async () => {
      const message = await client.publish({
        url: `${EXAMPLE_COM}/123/?asdasd=ooo`, //Any broken link will work
        retries: 0,
      });

      await sleep(10_000);

      const dlqLogs = await client.dlq.listMessages({ filter: { messageId: message.messageId } });
      expect(dlqLogs.messages.map((dlq) => dlq.messageId)).toContain(message.messageId);
    },
    { timeout: 20_000 }
  );

  test(
    "should delete single dlq item",
    async () => {
      const message = await client.publish({
        url: `${EXAMPLE_COM}/123/?asdasd=ooo`, //Any broken link will work
        retries: 0,
      });

      await sleep(10_000);

      let dlqLogs = await client.dlq.listMessages({ filter: { messageId: message.messageId } });
      let dlqMessage = dlqLogs.messages.find((dlq) => dlq.messageId === message.messageId);
      expect(dlqMessage).toBeDefined();
      const deletedDlqId = dlqMessage?.dlqId ?? "";

      await client.dlq.delete(dlqMessage?.dlqId ?? "");

      dlqLogs = await client.dlq.listMessages({ filter: { messageId: message.messageId } });
      dlqMessage = dlqLogs.messages.find((dlq) => dlq.messageId === message.messageId);

      expect(dlqMessage).toBeUndefined();

      // Single-item delete should preserve 404 semantics when item no longer exists.
      expect(client.dlq.delete(deletedDlqId)).rejects.toThrow();
    },
    { timeout: 20_000 }
  );

  test(
    "should filter requests",
    async () => {
      const message = await client.publish({
        url: `${EXAMPLE_COM}/123/?asdasd=ooo`, //Any broken link will work
        retries: 0,
      });

      await eventually(
        async () => {
          const result = await client.dlq.listMessages({
            filter: {
              messageId: message.messageId,
            },
          });

          expect(result.messages.length).toBe(1);
          expect(result.messages[0].messageId).toBe(message.messageId);
        },
        {
          timeout: 15_000,
          interval: 1000,
        }
      );

      const result = await client.dlq.listMessages({
        filter: {
          messageId: message.messageId,
        },
      });

      await client.dlq.delete(result.messages[0].dlqId);
    },
    { timeout: 20_000 }
  );

  test(
    "should filter requests with urlGroup",
    async () => {
      /**
       * we pass both urlGroup and topicName in our request, which could
       * fail in the backend. Adding this test to make sure that
       */
      const message = await client.publish({
        urlGroup: urlGroup,
        retries: 0,
      });

      await eventually(
        async () => {
          const result = await client.dlq.listMessages({
            filter: {
              urlGroup: urlGroup,
            },
          });

          expect(result.messages.length).toBe(1);
          expect(result.messages[0].messageId).toBe(message[0].messageId);
        },
        {
          timeout: 15_000,
          interval: 1000,
        }
      );

      const result = await client.dlq.listMessages({
        filter: {
          urlGroup: urlGroup,
        },
      });

      await client.dlq.delete(result.messages[0].dlqId);
    },
    { timeout: 20_000 }
  );

  test(
    "should get flow control",
    async () => {
      const parallelism = 10;
      const ratePerSecond = 5;
      const retryDelay = "2000 * retried";
      const randomKey = `flow-control-key-${Date.now()}`;
      const { messageId } = await client.publish({
        url: `${EXAMPLE_COM}/${randomKey}`,
        body: "hello",
        retries: 0,
        flowControl: {
          key: randomKey,
          parallelism,
          ratePerSecond,
          period: "1d",
        },
        retryDelay,
      });

      await eventually(
        async () => {
          const result = await client.dlq.listMessages({
            filter: {
              messageId,
            },
          });
          expect(result.messages.length).toBe(1);
          const message = result.messages[0];

          expect(message.flowControlKey).toBe(randomKey);
          expect(message.parallelism).toBe(parallelism);
          expect(message.ratePerSecond).toBe(ratePerSecond);
          expect(message.rate).toBe(ratePerSecond);
          expect(message.period).toBe(SECONDS_IN_A_DAY);
          expect(message.retryDelayExpression).toBe(retryDelay);
        },
        { timeout: 25_000, interval: 1000 }
      );
    },
    {
      timeout: 30_000,
    }
  );

  test(
    "should filter DLQ messages by label",
    async () => {
      const testLabel = `dlq-test-label-${Date.now()}`;
      await client.publish({
        url: `${EXAMPLE_COM}/${testLabel}`, // Any broken link will work
        retries: 0,
        label: testLabel,
      });

      await eventually(
        async () => {
          const dlqLogs = await client.dlq.listMessages({
            filter: {
              label: testLabel,
            },
          });

          expect(dlqLogs.messages.length).toBeGreaterThanOrEqual(1);
          for (const message of dlqLogs.messages) {
            if (message.label !== undefined) {
              expect(message.label).toBe(testLabel);
            }
          }
        },
        { timeout: 15_000, interval: 1000 }
      );
    },
    { timeout: 20_000 }
  );

  test(
    "should round-trip multiple labels on a DLQ message (label first, labels all)",
    async () => {
      const labelOne = `dlq-multi-a-${Date.now()}`;
      const labelTwo = `dlq-multi-b-${Date.now()}`;

      const { messageId } = await client.publish({
        url: `${EXAMPLE_COM}/${labelOne}`, // Any broken link will work
        retries: 0,
        label: [labelOne, labelTwo],
      });

      await eventually(
        async () => {
          const dlqLogs = await client.dlq.listMessages({
            filter: { label: [labelOne, labelTwo] },
          });

          const message = dlqLogs.messages.find((m) => m.messageId === messageId);
          expect(message).toBeDefined();
          // legacy `label` carries only the first label
          expect(message.label).toBe(labelOne);
          // new `labels` carries all of them
          expect(message.labels).toEqual([labelOne, labelTwo]);
        },
        { timeout: 15_000, interval: 1000 }
      );

      await client.dlq.delete({ filter: { label: [labelOne, labelTwo] } });
    },
    { timeout: 20_000 }
  );

  test(
    "should filter DLQ messages by multiple labels (OR semantics)",
    async () => {
      const labelA = `dlq-or-a-${Date.now()}`;
      const labelB = `dlq-or-b-${Date.now()}`;
      const labelC = `dlq-or-c-${Date.now()}`;

      // msg1: [A, B], msg2: [B, C], msg3: [C]
      const { messageId: messageAB } = await client.publish({
        url: `${EXAMPLE_COM}/${labelA}`,
        retries: 0,
        label: [labelA, labelB],
      });
      const { messageId: messageBC } = await client.publish({
        url: `${EXAMPLE_COM}/${labelB}`,
        retries: 0,
        label: [labelB, labelC],
      });
      const { messageId: messageC } = await client.publish({
        url: `${EXAMPLE_COM}/${labelC}`,
        retries: 0,
        label: labelC,
      });

      // wait for all three to land in the DLQ
      await eventually(
        async () => {
          const all = await client.dlq.listMessages({
            filter: { label: [labelA, labelB, labelC] },
          });
          const allIds = new Set(all.messages.map((m) => m.messageId));
          expect(allIds.has(messageAB) && allIds.has(messageBC) && allIds.has(messageC)).toBe(true);
        },
        { timeout: 15_000, interval: 1000 }
      );

      // filtering by [A, B] should match msgAB and msgBC (both share a label)
      // but NOT msgC.
      const dlqLogs = await client.dlq.listMessages({
        filter: { label: [labelA, labelB] },
      });
      const ids = new Set(dlqLogs.messages.map((m) => m.messageId));
      expect(ids.has(messageAB)).toBe(true);
      expect(ids.has(messageBC)).toBe(true);
      expect(ids.has(messageC)).toBe(false);

      await client.dlq.delete({ filter: { label: [labelA, labelB, labelC] } });
    },
    { timeout: 20_000 }
  );

  test(
    "should filter DLQ messages by multiple urls (OR semantics)",
    async () => {
      const stamp = Date.now();
      const urlA = `${EXAMPLE_COM}/dlq-url-a-${stamp}`;
      const urlB = `${EXAMPLE_COM}/dlq-url-b-${stamp}`;
      const urlC = `${EXAMPLE_COM}/dlq-url-c-${stamp}`;

      const { messageId: idA } = await client.publish({ url: urlA, retries: 0 });
      const { messageId: idB } = await client.publish({ url: urlB, retries: 0 });
      const { messageId: idC } = await client.publish({ url: urlC, retries: 0 });

      // wait for all three to land in the DLQ
      await eventually(
        async () => {
          const all = await client.dlq.listMessages({ filter: { url: [urlA, urlB, urlC] } });
          const ids = new Set(all.messages.map((m) => m.messageId));
          expect(ids.has(idA) && ids.has(idB) && ids.has(idC)).toBe(true);
        },
        { timeout: 15_000, interval: 1000 }
      );

      // filtering by [A, B] should match A and B but NOT C.
      const result = await client.dlq.listMessages({ filter: { url: [urlA, urlB] } });
      const ids = new Set(result.messages.map((m) => m.messageId));
      expect(ids.has(idA)).toBe(true);
      expect(ids.has(idB)).toBe(true);
      expect(ids.has(idC)).toBe(false);

      await client.dlq.delete({ filter: { url: [urlA, urlB, urlC] } });
    },
    { timeout: 25_000 }
  );

  test(
    "should retry multiple messages from DLQ",
    async () => {
      // Publish multiple messages that will fail
      const message1 = await client.publish({
        url: `${EXAMPLE_COM}/123/?asdasd=ooo`,
        retries: 0,
      });
      const message2 = await client.publish({
        url: `${EXAMPLE_COM}/456/?asdasd=ooo`,
        retries: 0,
      });
      const message3 = await client.publish({
        url: `${EXAMPLE_COM}/789/?asdasd=ooo`,
        retries: 0,
      });

      let dlqMessage1;
      let dlqMessage2;
      let dlqMessage3;

      // Wait for all messages to appear in DLQ
      await eventually(
        async () => {
          // Get all messages from DLQ
          const dlqLogs1 = await client.dlq.listMessages({
            filter: { messageId: message1.messageId },
          });
          const dlqLogs2 = await client.dlq.listMessages({
            filter: { messageId: message2.messageId },
          });
          const dlqLogs3 = await client.dlq.listMessages({
            filter: { messageId: message3.messageId },
          });

          dlqMessage1 = dlqLogs1.messages.find((dlq) => dlq.messageId === message1.messageId);
          dlqMessage2 = dlqLogs2.messages.find((dlq) => dlq.messageId === message2.messageId);
          dlqMessage3 = dlqLogs3.messages.find((dlq) => dlq.messageId === message3.messageId);

          expect(dlqMessage1).toBeDefined();
          expect(dlqMessage2).toBeDefined();
          expect(dlqMessage3).toBeDefined();
        },
        {
          timeout: 15_000,
          interval: 1000,
        }
      );

      // Retry all three messages
      const dlqIds = [dlqMessage1.dlqId, dlqMessage2.dlqId, dlqMessage3.dlqId];

      const retryResult = await client.dlq.retry({ dlqIds });

      // Verify the response contains messageIds
      expect(retryResult).toBeDefined();
      expect(retryResult.responses).toBeInstanceOf(Array);
      expect(retryResult.responses.length).toBe(3);
      expect(retryResult.responses.every((result) => result.messageId)).toBe(true);

      // Clean up - delete the retried messages from DLQ
      await client.dlq.deleteMany({ dlqIds });
    },
    { timeout: 20_000 }
  );

  test(
    "should delete multiple messages from DLQ",
    async () => {
      // Publish multiple messages that will fail
      const message1 = await client.publish({
        url: `${EXAMPLE_COM}/123/?asdasd=ooo`,
        retries: 0,
      });
      const message2 = await client.publish({
        url: `${EXAMPLE_COM}/456/?asdasd=ooo`,
        retries: 0,
      });
      const message3 = await client.publish({
        url: `${EXAMPLE_COM}/789/?asdasd=ooo`,
        retries: 0,
      });

      await sleep(10_000);

      // Get all messages from DLQ
      const dlqLogs1 = await client.dlq.listMessages({ filter: { messageId: message1.messageId } });
      const dlqLogs2 = await client.dlq.listMessages({ filter: { messageId: message2.messageId } });
      const dlqLogs3 = await client.dlq.listMessages({ filter: { messageId: message3.messageId } });

      const dlqMessage1 = dlqLogs1.messages.find((dlq) => dlq.messageId === message1.messageId);
      const dlqMessage2 = dlqLogs2.messages.find((dlq) => dlq.messageId === message2.messageId);
      const dlqMessage3 = dlqLogs3.messages.find((dlq) => dlq.messageId === message3.messageId);

      expect(dlqMessage1).toBeDefined();
      expect(dlqMessage2).toBeDefined();
      expect(dlqMessage3).toBeDefined();

      // Delete all three messages
      const dlqIds = [dlqMessage1.dlqId, dlqMessage2.dlqId, dlqMessage3.dlqId];

      const deleteResult = await client.dlq.deleteMany({ dlqIds });

      // Verify the response contains the correct deleted count
      expect(deleteResult).toBeDefined();
      expect(deleteResult.deleted).toBe(3);

      // Verify the messages are actually deleted from DLQ
      const dlqLogsAfterDelete1 = await client.dlq.listMessages({
        filter: { messageId: message1.messageId },
      });
      const dlqLogsAfterDelete2 = await client.dlq.listMessages({
        filter: { messageId: message2.messageId },
      });
      const dlqLogsAfterDelete3 = await client.dlq.listMessages({
        filter: { messageId: message3.messageId },
      });

      const dlqMessageAfterDelete1 = dlqLogsAfterDelete1.messages.find(
        (dlq) => dlq.messageId === message1.messageId
      );
      const dlqMessageAfterDelete2 = dlqLogsAfterDelete2.messages.find(
        (dlq) => dlq.messageId === message2.messageId
      );
      const dlqMessageAfterDelete3 = dlqLogsAfterDelete3.messages.find(
        (dlq) => dlq.messageId === message3.messageId
      );

      expect(dlqMessageAfterDelete1).toBeUndefined();
      expect(dlqMessageAfterDelete2).toBeUndefined();
      expect(dlqMessageAfterDelete3).toBeUndefined();
    },
    { timeout: 20_000 }
  );

  test(
    "should delete multiple messages from DLQ using string array overload",
    async () => {
      const message1 = await client.publish({
        url: `${EXAMPLE_COM}/123/?asdasd=ooo`,
        retries: 0,
      });
      const message2 = await client.publish({
        url: `${EXAMPLE_COM}/456/?asdasd=ooo`,
        retries: 0,
      });

      await sleep(10_000);

      const dlqLogs1 = await client.dlq.listMessages({ filter: { messageId: message1.messageId } });
      const dlqLogs2 = await client.dlq.listMessages({ filter: { messageId: message2.messageId } });

      const dlqMessage1 = dlqLogs1.messages.find((dlq) => dlq.messageId === message1.messageId);
      const dlqMessage2 = dlqLogs2.messages.find((dlq) => dlq.messageId === message2.messageId);

      expect(dlqMessage1).toBeDefined();
      expect(dlqMessage2).toBeDefined();

      // Delete using string[] overload
      const deleteResult = await client.dlq.delete([dlqMessage1.dlqId, dlqMessage2.dlqId]);

      expect(deleteResult).toBeDefined();
      expect(deleteResult.deleted).toBe(2);

      // Verify deletion
      const afterDelete1 = await client.dlq.listMessages({
        filter: { messageId: message1.messageId },
      });
      const afterDelete2 = await client.dlq.listMessages({
        filter: { messageId: message2.messageId },
      });

      expect(
        afterDelete1.messages.find((dlq) => dlq.messageId === message1.messageId)
      ).toBeUndefined();
      expect(
        afterDelete2.messages.find((dlq) => dlq.messageId === message2.messageId)
      ).toBeUndefined();
    },
    { timeout: 20_000 }
  );

  test(
    "should delete DLQ messages using filter overload",
    async () => {
      const label = `dlq-delete-filter-${Date.now()}`;
      await client.publish({
        url: `${EXAMPLE_COM}/123/?asdasd=ooo`,
        retries: 0,
        label,
      });
      await client.publish({
        url: `${EXAMPLE_COM}/456/?asdasd=ooo`,
        retries: 0,
        label,
      });

      await sleep(10_000);

      // Verify messages are in DLQ
      const dlqBefore = await client.dlq.listMessages({ filter: { label } });
      expect(dlqBefore.messages.length).toBeGreaterThanOrEqual(2);

      // Delete using filter overload
      const deleteResult = await client.dlq.delete({ filter: { label } });

      expect(deleteResult).toBeDefined();
      expect(deleteResult.deleted).toBeGreaterThanOrEqual(2);

      // Verify deletion
      const dlqAfter = await client.dlq.listMessages({ filter: { label } });
      expect(dlqAfter.messages.length).toBe(0);
    },
    { timeout: 20_000 }
  );

  test(
    "should retry single DLQ message using string overload",
    async () => {
      const message = await client.publish({
        url: `${EXAMPLE_COM}/123/?asdasd=ooo`,
        retries: 0,
      });

      await sleep(10_000);

      const dlqLogs = await client.dlq.listMessages({ filter: { messageId: message.messageId } });
      const dlqMessage = dlqLogs.messages.find((dlq) => dlq.messageId === message.messageId);

      expect(dlqMessage).toBeDefined();

      // Retry using single string overload
      const retryResult = await client.dlq.retry(dlqMessage.dlqId);

      expect(retryResult).toBeDefined();
      expect(retryResult.responses).toBeInstanceOf(Array);
      expect(retryResult.responses.length).toBe(1);
      expect(retryResult.responses[0].messageId).toBeDefined();
      expect(client.dlq.delete(dlqMessage.dlqId)).rejects.toThrow();
    },
    { timeout: 20_000 }
  );

  test(
    "should retry DLQ messages using string array overload",
    async () => {
      const message1 = await client.publish({
        url: `${EXAMPLE_COM}/123/?asdasd=ooo`,
        retries: 0,
      });
      const message2 = await client.publish({
        url: `${EXAMPLE_COM}/456/?asdasd=ooo`,
        retries: 0,
      });

      await sleep(10_000);

      const dlqLogs1 = await client.dlq.listMessages({ filter: { messageId: message1.messageId } });
      const dlqLogs2 = await client.dlq.listMessages({ filter: { messageId: message2.messageId } });

      const dlqMessage1 = dlqLogs1.messages.find((dlq) => dlq.messageId === message1.messageId);
      const dlqMessage2 = dlqLogs2.messages.find((dlq) => dlq.messageId === message2.messageId);

      expect(dlqMessage1).toBeDefined();
      expect(dlqMessage2).toBeDefined();

      // Retry using string[] overload
      const retryResult = await client.dlq.retry([dlqMessage1.dlqId, dlqMessage2.dlqId]);

      expect(retryResult).toBeDefined();
      expect(retryResult.responses).toBeInstanceOf(Array);
      expect(retryResult.responses.length).toBe(2);
      expect(retryResult.responses.every((r) => r.messageId)).toBe(true);

      // Clean up
      await client.dlq.delete([dlqMessage1.dlqId, dlqMessage2.dlqId]);
    },
    { timeout: 20_000 }
  );

  test(
    "should retry DLQ messages using filter overload",
    async () => {
      const label = `dlq-retry-filter-${Date.now()}`;
      await client.publish({
        url: `${EXAMPLE_COM}/123/?asdasd=ooo`,
        retries: 0,
        label,
      });
      await client.publish({
        url: `${EXAMPLE_COM}/456/?asdasd=ooo`,
        retries: 0,
        label,
      });

      await sleep(10_000);

      // Verify messages are in DLQ
      const dlqBefore = await client.dlq.listMessages({ filter: { label } });
      expect(dlqBefore.messages.length).toBeGreaterThanOrEqual(2);

      // Retry using filter overload
      const retryResult = await client.dlq.retry({ filter: { label } });

      expect(retryResult).toBeDefined();
      expect(retryResult.responses).toBeInstanceOf(Array);
      expect(retryResult.responses.length).toBeGreaterThanOrEqual(2);
      expect(retryResult.responses.every((r) => r.messageId)).toBe(true);

      // Clean up
      await client.dlq.delete({ filter: { label } });
    },
    { timeout: 20_000 }
  );

  test(
    "should respect count: 1 with all: true in delete",
    async () => {
      const label = `dlq-count-all-${Date.now()}`;
      await client.publish({ url: `${EXAMPLE_COM}/1`, retries: 0, label });
      await client.publish({ url: `${EXAMPLE_COM}/2`, retries: 0, label });

      await eventually(
        async () => {
          const dlq = await client.dlq.listMessages({ filter: { label } });
          expect(dlq.messages.length).toBe(2);
        },
        { timeout: 15_000, interval: 1000 }
      );

      const result = await client.dlq.delete({ all: true, count: 1 });
      expect(result.deleted).toBe(1);

      // clean up remaining
      await client.dlq.delete({ filter: { label } });
    },
    { timeout: 25_000 }
  );

  test(
    "should respect count: 1 with filter in delete",
    async () => {
      const label = `dlq-count-filter-${Date.now()}`;
      await client.publish({ url: `${EXAMPLE_COM}/1`, retries: 0, label });
      await client.publish({ url: `${EXAMPLE_COM}/2`, retries: 0, label });

      await eventually(
        async () => {
          const dlq = await client.dlq.listMessages({ filter: { label } });
          expect(dlq.messages.length).toBe(2);
        },
        { timeout: 15_000, interval: 1000 }
      );

      const result = await client.dlq.delete({ filter: { label }, count: 1 });
      expect(result.deleted).toBe(1);

      // clean up remaining
      await client.dlq.delete({ filter: { label } });
    },
    { timeout: 25_000 }
  );

  test(
    "should respect count: 1 with all: true in retry",
    async () => {
      const label = `dlq-retry-count-all-${Date.now()}`;
      await client.publish({ url: `${EXAMPLE_COM}/1`, retries: 0, label });
      await client.publish({ url: `${EXAMPLE_COM}/2`, retries: 0, label });

      await eventually(
        async () => {
          const dlq = await client.dlq.listMessages({ filter: { label } });
          expect(dlq.messages.length).toBe(2);
        },
        { timeout: 15_000, interval: 1000 }
      );

      const result = await client.dlq.retry({ all: true, count: 1 });
      expect(result.responses.length).toBe(1);

      // clean up remaining
      await client.dlq.delete({ filter: { label } });
    },
    { timeout: 25_000 }
  );

  test(
    "should respect count: 1 with filter in retry",
    async () => {
      const label = `dlq-retry-count-filter-${Date.now()}`;
      await client.publish({ url: `${EXAMPLE_COM}/1`, retries: 0, label });
      await client.publish({ url: `${EXAMPLE_COM}/2`, retries: 0, label });

      await eventually(
        async () => {
          const dlq = await client.dlq.listMessages({ filter: { label } });
          expect(dlq.messages.length).toBe(2);
        },
        { timeout: 15_000, interval: 1000 }
      );

      const result = await client.dlq.retry({ filter: { label }, count: 1 });
      expect(result.responses.length).toBe(1);

      // clean up remaining
      await client.dlq.delete({ filter: { label } });
    },
    { timeout: 25_000 }
  );

  test("should return empty result when retry is called with an empty array", async () => {
    const result = await client.dlq.retry([]);
    expect(result).toEqual({ responses: [] });
  });

  test("should return empty result when delete is called with an empty array", async () => {
    const result = await client.dlq.delete([]);
    expect(result).toEqual({ deleted: 0 });
  });

  // eslint-disable-next-line @typescript-eslint/require-await
  test("should throw when delete is called with { dlqIds: [] }", async () => {
    expect(client.dlq.delete({ dlqIds: [] })).rejects.toThrow("Empty dlqIds array");
  });

  test(
    "should return optional cursor from retry with dlqIds",
    async () => {
      const message = await client.publish({
        url: `${EXAMPLE_COM}/123/?asdasd=ooo`,
        retries: 0,
      });

      await eventually(
        async () => {
          const dlqLogs = await client.dlq.listMessages({
            filter: { messageId: message.messageId },
          });
          expect(dlqLogs.messages.length).toBe(1);
        },
        { timeout: 15_000, interval: 1000 }
      );

      const dlqLogs = await client.dlq.listMessages({
        filter: { messageId: message.messageId },
      });
      const dlqMessage = dlqLogs.messages[0];

      const retryResult = await client.dlq.retry(dlqMessage.dlqId);

      expect(retryResult.responses.length).toBe(1);
      expect(retryResult.responses[0].messageId).toBeDefined();
      // cursor should not be returned when using explicit dlqIds
      expect(retryResult.cursor).toBeUndefined();
    },
    { timeout: 20_000 }
  );

  test(
    "should filter DLQ messages by flowControlKey",
    async () => {
      const flowKey = `dlq-flow-key-${Date.now()}`;
      await client.publish({
        url: `${EXAMPLE_COM}/${flowKey}`,
        body: "hello",
        retries: 0,
        flowControl: {
          key: flowKey,
          parallelism: 1,
        },
      });

      await eventually(
        async () => {
          const result = await client.dlq.listMessages({
            filter: { flowControlKey: flowKey },
          });
          expect(result.messages.length).toBe(1);
          expect(result.messages[0].flowControlKey).toBe(flowKey);
        },
        { timeout: 15_000, interval: 1000 }
      );

      const result = await client.dlq.delete({ filter: { flowControlKey: flowKey } });
      expect(result).toBeDefined();
      expect(result.deleted).toBe(1);
    },
    { timeout: 20_000 }
  );

  test(
    "should retry with filter and get responses with messageId",
    async () => {
      const label = `dlq-retry-filter-verify-${Date.now()}`;
      await client.publish({
        url: `${EXAMPLE_COM}/retry-filter-test`,
        retries: 0,
        label,
      });

      await eventually(
        async () => {
          const dlqBefore = await client.dlq.listMessages({ filter: { label } });
          expect(dlqBefore.messages.length).toBeGreaterThanOrEqual(1);
        },
        { timeout: 15_000, interval: 1000 }
      );

      const retryResult = await client.dlq.retry({ filter: { label } });

      expect(retryResult.responses.length).toBe(1);
      expect(retryResult.responses[0].messageId).toBeDefined();
      expect(retryResult.cursor).toBeUndefined();

      await client.dlq.delete({ filter: { label } });
    },
    { timeout: 20_000 }
  );

  test(
    "should return undefined cursor on last page of listMessages",
    async () => {
      const result = await client.dlq.listMessages({
        filter: {
          label: `non-existent-label-${Date.now()}`,
        },
      });

      expect(result.cursor).toBeUndefined();
    },
    { timeout: 30_000 }
  );

  test(
    "should return undefined cursor (not empty string) from delete with no-match filter",
    async () => {
      const result = await client.dlq.delete({
        filter: { url: "https://definitely-does-not-exist-12345.example.com" },
      });
      expect(result.deleted).toBe(0);
      expect(result.cursor).toBeUndefined();
    },
    { timeout: 10_000 }
  );

  test(
    "should retry with ALL DLQ filter fields without error",
    async () => {
      const label = `dlq-all-fields-${Date.now()}`;
      const targetUrl = `${EXAMPLE_COM}/all-fields-test`;

      await client.publish({
        url: targetUrl,
        retries: 0,
        label,
      });

      await eventually(
        async () => {
          const dlqLogs = await client.dlq.listMessages({ filter: { label } });
          expect(dlqLogs.messages.length).toBeGreaterThanOrEqual(1);
        },
        { timeout: 15_000, interval: 1000 }
      );

      // Test each filter field individually to make sure none of them error
      const filterFields = [
        { messageId: "non-existent-id" },
        { url: "https://non-existent-url.example.com" },
        { urlGroup: "non-existent-url-group" },
        { scheduleId: "non-existent-schedule" },
        { queueName: "non-existent-queue" },
        { callerIp: "0.0.0.0" },
        { label: "non-existent-label" },
        { flowControlKey: "non-existent-key" },
        { responseStatus: 999 },
        { fromDate: new Date("2099-01-01") },
        { toDate: new Date("2000-01-01") },
      ];

      for (const filter of filterFields) {
        const retryResult = await client.dlq.retry({ filter });
        expect(retryResult).toBeDefined();
        expect(retryResult.responses).toBeInstanceOf(Array);
      }

      // Clean up
      await client.dlq.delete({ filter: { label } });
    },
    { timeout: 30_000 }
  );

  test(
    "should get server error when sending wrong filter field with typo",
    // eslint-disable-next-line @typescript-eslint/require-await
    async () => {
      // Sending an unknown/typo filter field should cause the server to return an error
      // eslint-disable-next-line @typescript-eslint/no-unsafe-assignment
      const bogusFilter = { filter: { labeel: "some-value" } };
      // eslint-disable-next-line @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument
      const promise = client.dlq.delete(bogusFilter);
      expect(promise).rejects.toThrow();
    },
    { timeout: 10_000 }
  );

  // eslint-disable-next-line @typescript-eslint/require-await
  test("should throw when retry is called with { dlqIds: [] }", async () => {
    expect(client.dlq.retry({ dlqIds: [] })).rejects.toThrow("Empty dlqIds array");
  });
});

describe("DLQ - mocked early return", () => {
  test("should not send request when delete is called with empty string array", async () => {
    await mockQStashServer({
      execute: async () => {
        const mockClient = new Client({
          token: "mock-token",
          baseUrl: MOCK_QSTASH_SERVER_URL,
        });
        const result = await mockClient.dlq.delete([]);
        expect(result).toEqual({ deleted: 0 });
      },
      responseFields: { body: {}, status: 200 },
      receivesRequest: false,
    });
  });

  test("should not send request when delete is called with { dlqIds: [] } and throw", async () => {
    await mockQStashServer({
      execute: () => {
        const mockClient = new Client({
          token: "mock-token",
          baseUrl: MOCK_QSTASH_SERVER_URL,
        });
        expect(mockClient.dlq.delete({ dlqIds: [] })).rejects.toThrow("Empty dlqIds array");
      },
      responseFields: { body: {}, status: 200 },
      receivesRequest: false,
    });
  });

  test("should not send request when retry is called with empty string array", async () => {
    await mockQStashServer({
      execute: async () => {
        const mockClient = new Client({
          token: "mock-token",
          baseUrl: MOCK_QSTASH_SERVER_URL,
        });
        const result = await mockClient.dlq.retry([]);
        expect(result).toEqual({ responses: [] });
      },
      responseFields: { body: {}, status: 200 },
      receivesRequest: false,
    });
  });

  test("should not send request when retry is called with { dlqIds: [] } and throw", async () => {
    await mockQStashServer({
      execute: () => {
        const mockClient = new Client({
          token: "mock-token",
          baseUrl: MOCK_QSTASH_SERVER_URL,
        });
        expect(mockClient.dlq.retry({ dlqIds: [] })).rejects.toThrow("Empty dlqIds array");
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
        await expectToReject(() => mockClient.dlq.delete(""), "DLQ id cannot be empty");
      },
      responseFields: { body: {}, status: 200 },
      receivesRequest: false,
    });
  });

  // eslint-disable-next-line @typescript-eslint/require-await
  test("http client should throw when empty array is passed in query params", async () => {
    const mockClient = new Client({
      token: "mock-token",
      baseUrl: MOCK_QSTASH_SERVER_URL,
    });
    // eslint-disable-next-line @typescript-eslint/no-unsafe-member-access
    const http = mockClient.http;

    const promise = http.request({
      method: "GET",
      path: ["v2", "dlq"],
      query: { dlqIds: [] },
    });
    expect(promise).rejects.toThrow("Empty array");
  });
});

describe("DLQ - mocked filter url shape", () => {
  const token = "mock-token";

  test("should send a single label as a single query param", async () => {
    const mockClient = new Client({ token, baseUrl: MOCK_QSTASH_SERVER_URL });
    await mockQStashServer({
      execute: async () => {
        await mockClient.dlq.listMessages({ filter: { label: "label-1" } });
      },
      responseFields: { body: { messages: [] }, status: 200 },
      receivesRequest: {
        method: "GET",
        token,
        url: `${MOCK_QSTASH_SERVER_URL}/v2/dlq?label=label-1`,
      },
      validateRequest: (request) => {
        expect(new URL(request.url).searchParams.getAll("label")).toEqual(["label-1"]);
      },
    });
  });

  test("should send multiple labels as repeated query params (OR semantics)", async () => {
    const mockClient = new Client({ token, baseUrl: MOCK_QSTASH_SERVER_URL });
    await mockQStashServer({
      execute: async () => {
        await mockClient.dlq.listMessages({ filter: { label: ["label-1", "label-2"] } });
      },
      responseFields: { body: { messages: [] }, status: 200 },
      receivesRequest: {
        method: "GET",
        token,
        url: `${MOCK_QSTASH_SERVER_URL}/v2/dlq?label=label-1&label=label-2`,
      },
      validateRequest: (request) => {
        expect(new URL(request.url).searchParams.getAll("label")).toEqual(["label-1", "label-2"]);
      },
    });
  });

  test("should send multi-value url and flowControlKey as repeated query params", async () => {
    const mockClient = new Client({ token, baseUrl: MOCK_QSTASH_SERVER_URL });
    await mockQStashServer({
      execute: async () => {
        await mockClient.dlq.listMessages({
          filter: {
            url: ["https://a.com", "https://b.com"],
            flowControlKey: ["key-1", "key-2"],
          },
        });
      },
      responseFields: { body: { messages: [] }, status: 200 },
      receivesRequest: {
        method: "GET",
        token,
        url: `${MOCK_QSTASH_SERVER_URL}/v2/dlq?url=${encodeURIComponent("https://a.com")}&url=${encodeURIComponent("https://b.com")}&flowControlKey=key-1&flowControlKey=key-2`,
      },
      validateRequest: (request) => {
        const parameters = new URL(request.url).searchParams;
        expect(parameters.getAll("url")).toEqual(["https://a.com", "https://b.com"]);
        expect(parameters.getAll("flowControlKey")).toEqual(["key-1", "key-2"]);
      },
    });
  });
});
