"""Signing: the signing keys as live state (GET /v2/keys reads them, POST
/v2/keys/rotate rotates them, POST /__dev/reset restores the public
defaults) and the HS256 JWT put in Upstash-Signature on every delivery and
callback, made with the current key of the moment it goes out.

The defaults are the public dev keys of QStash's local dev server: the
official SDKs' dev mode and qstash.verify's dev mode know them, so a
receiver in dev mode verifies the emulator's deliveries until the keys are
rotated twice (after one rotation the default next key signs, which dev
mode still tries)."""

import base64
import hashlib
import hmac
import json
import time

from .common import rand_base62


CURRENT_SIGNING_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
NEXT_SIGNING_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"

# A new key looks like QStash's: "sig_" and 28 base62 characters.
KEY_CHARS = 28


def b64url_nopad(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_signing_key():
    return "sig_" + rand_base62(KEY_CHARS)


def sign_jwt(url, body, key):
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


class SigningMixin:
    """Emulator methods: the signing keys (self.signing_keys, declared in
    store.py) and signatures made with the current one."""

    def keys_get(self):
        """GET /v2/keys: {"current", "next"}."""
        with self.cond:
            return 200, dict(self.signing_keys)

    def keys_rotate(self):
        """POST /v2/keys/rotate: next becomes current, a new next is made;
        answers the new pair, as QStash does."""
        with self.cond:
            self.signing_keys = {"current": self.signing_keys["next"], "next": new_signing_key()}
            self.log("signing keys rotated: current is now the old next")
            return 200, dict(self.signing_keys)

    def sign(self, url, body):
        """The Upstash-Signature of a request going out now."""
        with self.cond:
            key = self.signing_keys["current"]
        return sign_jwt(url, body, key)
