#!/usr/bin/env python3
"""A loopback server that answers with exact bytes, for the HTTP client specs.

Usage:
    python3 spec/support/raw_http_server.py --script FILE --log FILE
                                            --port-file FILE [--watch-pid PID]

The script (JSON) maps a name to what the server does with a request whose
path is /<name> (anything after a "?" is ignored):

    send       the bytes to answer with (a string, each char one byte: latin-1)
    read_body  how many bytes of the request body to read before answering
               ("all", the default, is its whole Content-Length; 0 answers at
               once, before the body)
    then       more bytes sent `pause` seconds after `send` (default 0.05)
    after      "hold" (the default: wait for the next request on the same
               connection), "close" (close once the request body was read),
               "reset" (close at once, with a TCP reset), "shut" (shut down
               the sending side, then read and discard until the client closes)

Every request and every end of a connection is logged to --log, one JSON
object a line: {"conn": n, "event": "request", "name": ..., "body": bytes
read}, {"conn": n, "event": "then", "name": ...} once `then` went out, and
{"conn": n, "event": "eof"} when the client closes its side or resets. Connections are numbered 1, 2, ... in accept order. The server binds
127.0.0.1 only, writes its port to --port-file once it listens, and runs until
SIGTERM or until the --watch-pid process is gone.
"""

import argparse
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

LOCK = threading.Lock()


def log(path, record):
    with LOCK:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_head(conn, buf):
    """Reads up to the end of a request head: (head, rest) or (None, buf)."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, buf
        buf += data
        if len(buf) > 1 << 20:
            return None, buf
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def serve(conn, n, script, log_path):
    buf = b""
    try:
        while True:
            head, buf = read_head(conn, buf)
            if head is None:
                break
            lines = head.split("\r\n")
            target = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
            # the absolute form (through a proxy) or the origin form
            path = target.split("?", 1)[0]
            name = path.rsplit("/", 1)[-1]
            length = 0
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            entry = script.get(name, {"send": "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"})
            want = entry.get("read_body", "all")
            want = length if want == "all" else min(int(want), length)
            while len(buf) < want:
                data = conn.recv(65536)
                if not data:
                    break
                buf += data
            got = min(len(buf), want)
            buf = buf[want:] if want == length else b""
            log(log_path, {"conn": n, "event": "request", "name": name, "body": got})
            after = entry.get("after", "hold")
            if after == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                log(log_path, {"conn": n, "event": "reset"})
                return
            conn.sendall(entry.get("send", "").encode("latin-1"))
            if "then" in entry:
                time.sleep(entry.get("pause", 0.05))
                conn.sendall(entry["then"].encode("latin-1"))
                log(log_path, {"conn": n, "event": "then", "name": name})
            if after == "close":
                conn.close()
                log(log_path, {"conn": n, "event": "closed"})
                return
            if after == "shut":
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
                break
    except OSError:
        pass
    log(log_path, {"conn": n, "event": "eof"})
    try:
        conn.close()
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--script", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--watch-pid", type=int)
    args = ap.parse_args()
    with open(args.script) as f:
        script = json.load(f)

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.watch_pid:
        def watch():
            while True:
                try:
                    os.kill(args.watch_pid, 0)
                except OSError:
                    os._exit(0)
                time.sleep(1)
        threading.Thread(target=watch, daemon=True).start()

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, args.port_file)
    n = 0
    while True:
        conn, _ = ls.accept()
        n += 1
        threading.Thread(target=serve, args=(conn, n, script, args.log), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
