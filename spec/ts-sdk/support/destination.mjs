// The destinations the ported tests publish to, in place of the public hosts
// upstream uses (example.com, httpbin.org, mock.httpstatus.io): an HTTP
// server on a free loopback port, started by the test file.
//
//   const dest = await startDestination({ status: 500 });           // every delivery fails
//   const dest = await startDestination({ status: 200, holdMs: 3000 }); // answers late
//   dest.url ("http://127.0.0.1:<port>"), dest.port, dest.received, await dest.close()
//
// holdMs keeps each request waiting before the answer, as a remote host
// does for a while: QStash (and the emulator) keeps a message readable with
// GET /v2/messages/{id} only until its delivery is done.
import * as http from "node:http";

export const startDestination = async ({ status = 200, holdMs = 0 } = {}) => {
  const received = [];
  const timers = new Set();
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      received.push({ method: request.method, url: request.url, headers: request.headers,
                      body: Buffer.concat(chunks).toString() });
      const answer = () => {
        timers.delete(timer);
        response.writeHead(status, { "Content-Type": "text/plain" });
        response.end(status < 300 ? "ok" : "destination failed on purpose");
      };
      const timer = setTimeout(answer, holdMs);
      timers.add(timer);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
};
