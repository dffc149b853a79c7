// Copyright (c) 2022 Upstash, Inc. MIT license: see spec/ts-sdk/LICENSE.qstash-js.
// Port of what the upstream tests import from upstash/qstash-js
// src/client/workflow/test-utils.ts (v2.11.3, 81d951b): MOCK_SERVER_URL,
// expectToReject and mockQStashServer, as written, on Node's http server instead of Bun.serve.
// The mock listens on a free loopback port (upstream: localhost:8080) for the
// whole file; each mockQStashServer call installs its handler and removes it.
import * as http from "node:http";
import { afterAll, expect } from "./bun-test.mjs";

let handler;
const server = http.createServer(async (incoming, outgoing) => {
  const chunks = [];
  for await (const chunk of incoming) chunks.push(chunk);
  const body = Buffer.concat(chunks);
  // the request as Bun.serve's fetch handler sees it: a WHATWG Request
  const request = new Request(new URL(incoming.url, MOCK_QSTASH_SERVER_URL), {
    method: incoming.method,
    headers: Object.entries(incoming.headers).flatMap(([k, v]) =>
      Array.isArray(v) ? v.map((x) => [k, x]) : [[k, v]]
    ),
    body: ["GET", "HEAD"].includes(incoming.method) ? undefined : body,
  });
  const response = handler
    ? await handler(request)
    : new Response("no mock installed", { status: 500 });
  outgoing.writeHead(response.status, Object.fromEntries(response.headers));
  outgoing.end(Buffer.from(await response.arrayBuffer()));
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
// the SDK's fetch keeps its connections alive: close them, or Node waits for
// them to time out before it ends
afterAll(() => {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(resolve));
});

export const MOCK_QSTASH_SERVER_PORT = server.address().port;
export const MOCK_QSTASH_SERVER_URL = `http://127.0.0.1:${MOCK_QSTASH_SERVER_PORT}`;
// upstream's destination of the mocked cases, which only check the request
export const MOCK_SERVER_URL = "https://requestcatcher.com/";

/**
 * Asserts that calling `fn` rejects with an error whose message contains
 * `message`.
 */
export const expectToReject = async (call, message) => {
  let error;
  try {
    await call();
  } catch (error_) {
    error = error_;
  }
  expect(error).toBeInstanceOf(Error);
  expect(error.message).toContain(message);
};

/**
 * Create a HTTP client to mock QStash. We pass the URL of the mock server
 * as baseUrl and verify that the request is as we expect.
 *
 * @param execute function which will call QStash
 * @param responseFields body and status of the response QStash returns
 * @param receivesRequest fields of the request sent to QStash as a result of running
 *    `await execute()`. If set to false, we assert that no request is sent.
 */
export const mockQStashServer = async ({
  execute,
  responseFields,
  receivesRequest,
  validateRequest,
}) => {
  const shouldBeCalled = Boolean(receivesRequest);
  let called = false;

  handler = async (request) => {
    called = true;

    if (!receivesRequest) {
      return new Response("assertion in mock QStash failed. fetch shouldn't have been called.", {
        status: 400,
      });
    }
    const { method, url, token, body } = receivesRequest;
    try {
      expect(request.method).toBe(method);
      expect(request.url).toBe(url);
      expect(request.headers.get("authorization")).toBe(`Bearer ${token}`);
      // check body
      if (body) {
        expect(await request.json()).toEqual(body);
      } else {
        expect(await request.text()).toBeFalsy();
      }
      // check headers
      if (receivesRequest.headers) {
        for (const header in receivesRequest.headers) {
          const value = receivesRequest.headers[header];
          expect(request.headers.get(header)).toBe(value);
        }
      }

      validateRequest?.(request);
    } catch (error) {
      if (error instanceof Error) {
        console.error(error);
        return new Response(`assertion in mock QStash failed.`, {
          status: 400,
        });
      }
    }
    return new Response(JSON.stringify(responseFields.body), {
      status: responseFields.status,
    });
  };

  try {
    await execute();
    expect(called).toBe(shouldBeCalled);
  } finally {
    handler = undefined;
  }
};
