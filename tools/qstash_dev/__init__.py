"""qstash_dev: a local QStash emulator (publish, batch, delivery, retries,
the DLQ, message get and cancel, URL groups, queues, schedules, logs; README.md lists what it
covers).  Python 3 standard library only; state lives in memory.

    python3 tools/qstash-dev [--port N] [--host 127.0.0.1] [--token T]
                             [--time-scale F] [--burst-limit N]
                             [--port-file PATH] [--quiet]
    PYTHONPATH=tools python3 -m qstash_dev [the same flags]

Besides the QStash REST endpoints it serves debugging endpoints (token
required): GET /__dev/deliveries (every delivery attempt), POST /__dev/reset
(forget everything), GET /__dev/requests (API requests served per method and
route).

One concern a file (each file's docstring says what it owns):

    cli.py         the command line; starts the server and the timer
    http_front.py  HTTP/1.1 wire: request bodies, one-write JSON responses
    routes.py      the endpoint table and which method answers each
    auth.py        the token check and the burst rate limit
    errors.py      ApiError: status, message, headers
    emulator.py    the Emulator: the state with every concern's methods
    store.py       the state, declared in one place (reset clears it)
    scheduler.py   the timer: due messages start a delivery attempt
    delivery.py    HTTP to destinations, retries, callbacks, into the DLQ
    messages.py    the Message model, publish, batch, get, cancel
    dlq.py         the DLQ: entries and endpoints
    logs.py        the log entries and GET /v2/logs
    url_groups.py  URL groups (topics) and their endpoints
    schedules.py   schedules: their endpoints and runs on the schedule clock
    cron.py        cron expressions: QStash's check, the next run (croniter)
    dev.py         /__dev/* endpoints
    config.py      what Upstash-* headers configure; retry-delay expressions
    params.py      parsing of values, query filters, cursors, batch bodies
    signing.py     the signing keys (read, rotate) and the Upstash-Signature JWT
    common.py      clock, ids, base64, SHA-256, header maps
"""
