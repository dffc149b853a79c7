#!/usr/bin/env python3
"""Sends N requests at once, each on its own connection, and reports.

Usage: python3 spec/support/flood.py PORT PATH N [TIMEOUT]

Opens N connections to 127.0.0.1:PORT together, sends `GET PATH` with
`Connection: close` on each, reads each response to its end, and prints one
JSON line: {"n": N, "statuses": {"200": k, ...}, "bodies": {body: count},
"errors": {message: count}, "elapsed": seconds}.
"""

import asyncio
import collections
import json
import resource
import sys
import time


async def one(port, path, timeout, out):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        writer.write(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "none"
        out["statuses"][status] += 1
        # a chunked body: keep its first chunk's data only
        if b"transfer-encoding: chunked" in head.lower():
            size, _, rest = body.partition(b"\r\n")
            body = rest[:int(size, 16)]
        out["bodies"][body.decode("latin-1").strip()] += 1
    except Exception as e:  # noqa: BLE001 - every failure is counted and shown
        out["errors"][type(e).__name__ + ": " + str(e)] += 1


async def main():
    port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 60
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1024), hard))
    out = {"statuses": collections.Counter(), "bodies": collections.Counter(),
           "errors": collections.Counter()}
    t0 = time.monotonic()
    await asyncio.gather(*(one(port, path, timeout, out) for _ in range(n)))
    print(json.dumps({"n": n, "statuses": out["statuses"], "bodies": out["bodies"],
                      "errors": out["errors"], "elapsed": time.monotonic() - t0}))


asyncio.run(main())
