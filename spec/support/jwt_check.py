#!/usr/bin/env python3
"""Verify an Upstash-Signature JWT.

    python3 spec/support/jwt_check.py TOKEN KEY BODYFILE URL

Exit 0 when the token is an HS256 JWT signed with KEY whose claims are valid
for URL and the raw body in BODYFILE; otherwise print the reason and exit 1.
Stricter than a receiver needs to be: it also insists on the emulator's exact
encoding (unpadded segments, padded body claim, 5 minute lifetime).
"""

import base64
import hashlib
import hmac
import json
import sys
import time


def b64url_decode(seg):
    if "=" in seg:
        raise ValueError("padded JWT segment")
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def check(token, key, body, url):
    parts = token.split(".")
    if len(parts) != 3:
        return "malformed: %d segments" % len(parts)
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        sig = b64url_decode(parts[2])
    except ValueError as e:
        return "malformed: %s" % e
    if header != {"alg": "HS256", "typ": "JWT"}:
        return "bad header %r" % (header,)
    want = hmac.new(key.encode("utf-8"), (parts[0] + "." + parts[1]).encode("ascii"),
                    hashlib.sha256).digest()
    if not hmac.compare_digest(want, sig):
        return "bad signature"
    now = int(time.time())
    if claims.get("iss") != "Upstash":
        return "wrong issuer %r" % claims.get("iss")
    if claims.get("sub") != url:
        return "url mismatch: %r != %r" % (claims.get("sub"), url)
    for k in ("exp", "nbf", "iat"):
        if not isinstance(claims.get(k), int):
            return "claim %s missing or not an integer" % k
    if not claims["exp"] > now - 5:
        return "expired"
    if not claims["nbf"] <= now + 5:
        return "not yet valid"
    if claims["exp"] - claims["iat"] != 300:
        return "lifetime is not 300 s"
    if not str(claims.get("jti", "")).startswith("jwt_"):
        return "jti should start with jwt_"
    expect = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode("ascii")
    if claims.get("body") != expect:
        return "body mismatch: %r != %r" % (claims.get("body"), expect)
    return None


def main():
    if len(sys.argv) != 5:
        sys.stderr.write(__doc__)
        return 2
    token, key, bodyfile, url = sys.argv[1:]
    with open(bodyfile, "rb") as fh:
        body = fh.read()
    reason = check(token, key, body, url)
    if reason:
        sys.stderr.write("jwt_check: %s\n" % reason)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
