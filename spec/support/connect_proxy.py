#!/usr/bin/env python3
"""A small HTTP proxy for the OpenResty specs: CONNECT tunnels and
absolute-form requests, on 127.0.0.1 only.

Usage:
    python3 spec/support/connect_proxy.py --port-file PATH --log PATH
                                          [--auth USER:PASSWORD] [--watch-pid PID]

Each client connection appends one JSON line to --log when its first request
head arrives: {"conn": n, "method": ..., "target": ..., "auth": value of
Proxy-Authorization or null}. CONNECT host:port answers 200 and then relays
bytes both ways; any other method must carry an absolute http:// URL: the
head is relayed as is to that origin, then bytes both ways (one origin per
client connection). With --auth, a request without the matching Basic
credentials gets 407 and the connection is closed.
"""

import argparse
import base64
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

lock = threading.Lock()
counter = [0]


def log_line(path, rec):
    with lock:
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
        if len(data) > 65536:
            return None, b""
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def relay(a, b):
    t = threading.Thread(target=pipe, args=(b, a), daemon=True)
    t.start()
    pipe(a, b)
    t.join()
    for s in (a, b):
        try:
            s.close()
        except OSError:
            pass


def handle(client, args):
    with lock:
        counter[0] += 1
        conn_id = counter[0]
    head, rest = read_head(client)
    if head is None:
        client.close()
        return
    lines = head.split("\r\n")
    method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    auth = headers.get("proxy-authorization")
    log_line(args.log, {"conn": conn_id, "method": method, "target": target, "auth": auth})
    if args.auth:
        want = "Basic " + base64.b64encode(args.auth.encode()).decode()
        if auth != want:
            client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                           b"Proxy-Authenticate: Basic realm=\"spec\"\r\n"
                           b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            client.close()
            return
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        except (OSError, ValueError):
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            client.close()
            return
        upstream.settimeout(None)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            upstream.sendall(rest)
        relay(client, upstream)
        return
    url = urllib.parse.urlsplit(target)
    if url.scheme != "http" or not url.hostname:
        client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        client.close()
        return
    try:
        upstream = socket.create_connection((url.hostname, url.port or 80), timeout=10)
    except OSError:
        client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        client.close()
        return
    upstream.settimeout(None)
    upstream.sendall(head.encode("latin-1") + b"\r\n\r\n" + rest)
    relay(client, upstream)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--auth")
    ap.add_argument("--watch-pid", type=int)
    args = ap.parse_args()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    open(args.log, "a").close()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.getsockname()[1])
    os.rename(tmp, args.port_file)

    if args.watch_pid:
        def watch():
            while True:
                try:
                    os.kill(args.watch_pid, 0)
                except OSError:
                    os._exit(0)
                time.sleep(1)
        threading.Thread(target=watch, daemon=True).start()

    while True:
        client, _ = srv.accept()
        threading.Thread(target=handle, args=(client, args), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
