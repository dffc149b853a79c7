// Copyright (c) 2022 Upstash, Inc. MIT license: see spec/ts-sdk/LICENSE.qstash-js.
// Port of upstash/qstash-js src/client/url-groups.test.ts (v2.11.3, commit 81d951b):
// every case, in upstream's order, with upstream's describe and test names,
// run with Node's test runner (`node --test`) against the official SDK from
// npm (@upstash/qstash, pinned in package.json) and our emulator.
//
// The test bodies are upstream's, TypeScript types and non-null assertions
// removed. What changed:
// - imports: the SDK from npm; bun:test and the test utilities from
//   ./support (Node ports of them, see there);
// - the client reads QSTASH_URL and QSTASH_TOKEN, set to the emulator by
//   spec/ts_sdk_tests_spec.lua; the mocked cases use a local mock server.
// The endpoints' URLs (requestcatcher.com) are kept: these tests only store
// them in a group and read them back, nothing is published to them.
import { Client } from "@upstash/qstash";
import { describe, expect, test } from "./support/bun-test.mjs";
import { MOCK_QSTASH_SERVER_URL, mockQStashServer, expectToReject } from "./support/test-utils.mjs";

describe("url group empty id guard", () => {
  test("should not send request when get is called with an empty string", async () => {
    await mockQStashServer({
      execute: async () => {
        const mockClient = new Client({
          token: "mock-token",
          baseUrl: MOCK_QSTASH_SERVER_URL,
        });
        await expectToReject(() => mockClient.urlGroups.get(""), "Url group name cannot be empty");
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
          () => mockClient.urlGroups.delete(""),
          "Url group name cannot be empty"
        );
      },
      responseFields: { body: {}, status: 200 },
      receivesRequest: false,
    });
  });
});

describe("url group", () => {
  const client = new Client({ token: process.env.QSTASH_TOKEN });

  test("should create a url group, check and delete it", async () => {
    const endpoint = { name: "url-group1", url: "https://oz.requestcatcher.com" };
    await client.urlGroups.addEndpoints({
      endpoints: [endpoint],
      name: "my-proxy-url-group",
    });

    const urlGroup = await client.urlGroups.get("my-proxy-url-group");
    await client.urlGroups.delete("my-proxy-url-group");
    expect(urlGroup.endpoints).toContainEqual(endpoint);
  });

  test("should create a url group, and add one more endpoint then delete it", async () => {
    const endpoint = { name: "urlGroup1", url: "https://oz.requestcatcher.com" };
    const endpoint1 = { name: "urlGroup2", url: "https://oz1.requestcatcher.com" };

    await client.urlGroups.addEndpoints({
      endpoints: [endpoint],
      name: "my-proxy-url-group",
    });

    await client.urlGroups.get("my-proxy-url-group");
    await client.urlGroups.addEndpoints({ name: "my-proxy-url-group", endpoints: [endpoint1] });

    const list = await client.urlGroups.list();
    await client.urlGroups.delete("my-proxy-url-group");

    expect(list[0].endpoints).toContainEqual(endpoint);
    expect(list[0].endpoints).toContainEqual(endpoint1);
  });
});
