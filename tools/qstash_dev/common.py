"""Small helpers every part shares: the wall clock in ms (now_ms: the one
place a test clock would replace), ids (message ids in base62), base64 and
UTF-8 views of bodies, SHA-256, header lists as {Name: [values]}."""

import base64
import hashlib
import secrets
import time


BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def now_ms():
    return int(time.time() * 1000)


def rand_base62(n):
    return "".join(secrets.choice(BASE62) for _ in range(n))


def new_message_id():
    return "msg_" + rand_base62(26)


def b64(data):
    return base64.b64encode(data).decode("ascii")


def utf8_or_none(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def sha256_hex(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def header_map(pairs):
    out = {}
    for n, v in pairs:
        out.setdefault(n, []).append(v)
    return out
