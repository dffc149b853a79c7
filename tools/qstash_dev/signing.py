"""Signing: the dev signing keys (GET /v2/keys answers them; the official
SDKs' dev mode and qstash.verify's dev mode know them) and the HS256 JWT put
in Upstash-Signature on every delivery and callback."""

import base64
import hashlib
import hmac
import json
import time

from .common import rand_base62


CURRENT_SIGNING_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
NEXT_SIGNING_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"


def b64url_nopad(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_jwt(url, body, key=CURRENT_SIGNING_KEY):
    """HS256 JWT as QStash puts in Upstash-Signature."""
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "iss": "Upstash",
        "sub": url,
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": "jwt_" + rand_base62(24),
        "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode("ascii"),
    }
    seg = lambda obj: b64url_nopad(json.dumps(obj, separators=(",", ":")).encode("utf-8"))
    signing_input = seg(header) + "." + seg(claims)
    sig = hmac.new(key.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url_nopad(sig)
