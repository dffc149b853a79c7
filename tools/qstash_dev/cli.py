"""The command line (same flags as ever: --port, --host, --token,
--time-scale, --burst-limit, --port-file, --watch-pid, --quiet): starts the
server and the scheduler, writes the port file, stops on SIGTERM or SIGINT or
when the watched process is gone."""

import argparse
import math
import os
import signal
import socket
import sys
import threading

from .auth import DEFAULT_TOKEN
from .emulator import Emulator
from .http_front import Handler, Server


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as fh:
        fh.write("%d\n" % port)
    os.replace(tmp, path)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main(argv=None):
    ap = argparse.ArgumentParser(prog="qstash-dev", description="Local QStash emulator (in-memory).")
    ap.add_argument("--port", type=int, default=None,
                    help="port to listen on (default $QSTASH_DEV_PORT or 8080; 0 = any free port)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--token", default=DEFAULT_TOKEN, help="accepted token (default: the public dev token)")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="multiply every delay, backoff and not-before wait by F (default 1.0)")
    ap.add_argument("--burst-limit", type=int, default=0,
                    help="max requests per second per token on non-publish endpoints (default: unlimited)")
    ap.add_argument("--port-file", default=None, help="write the bound port to PATH (atomically)")
    ap.add_argument("--watch-pid", type=int, default=None,
                    help="exit when process PID is gone (for test harnesses)")
    ap.add_argument("--quiet", action="store_true", help="no request log on stderr")
    args = ap.parse_args(argv)

    port = args.port
    if port is None:
        env = os.environ.get("QSTASH_DEV_PORT", "").strip()
        try:
            port = int(env) if env else 8080
        except ValueError:
            ap.error("QSTASH_DEV_PORT must be an integer, got %r" % env)
    if not 0 <= port <= 65535:
        ap.error("--port must be 0..65535")
    if args.time_scale < 0 or not math.isfinite(args.time_scale):
        ap.error("--time-scale must be >= 0")
    if args.burst_limit < 0:
        ap.error("--burst-limit must be >= 0")
    if not args.token:
        ap.error("--token must not be empty")

    emu = Emulator(args.token, args.time_scale, args.burst_limit, args.quiet)
    if ":" in args.host:
        Server.address_family = socket.AF_INET6
    try:
        server = Server((args.host, port), Handler)
    except OSError as e:
        sys.stderr.write("qstash-dev: cannot listen on %s:%d: %s\n" % (args.host, port, e))
        return 1
    server.emu = emu
    actual = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, actual)
    host = "[%s]" % args.host if ":" in args.host else args.host
    sys.stdout.write("qstash-dev listening on http://%s:%d\n" % (host, actual))
    sys.stdout.flush()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    emu.start()
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    while not stop.wait(0.25):
        if args.watch_pid and not pid_alive(args.watch_pid):
            break
    server.shutdown()
    server.server_close()
    emu.stop()
    return 0
