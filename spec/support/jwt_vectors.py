#!/usr/bin/env python3
"""Test vectors for qstash.verify, built independently of the C code.

Prints one JSON object mapping a case name to
  {signature, body, url?, current_signing_key, next_signing_key,
   clock_tolerance?, expect: "ok" | <reason>, claims? (for "ok")}
`body` is a latin-1 string: each character is one byte of the raw body.
Times are relative to now, so run it at test time.

    python3 spec/support/jwt_vectors.py sign < requests.json

signs tokens for specs that choose their own keys and claims: stdin holds a
JSON array of {key, body?, url?, claims?, drop?, pad_body?} (body: latin-1
string, url: the `sub` claim, claims: values that replace the defaults, drop:
names of claims to leave out, pad_body: false for an unpadded body claim, as
the official SDKs' tests make it) and stdout gets a JSON array of tokens, in order.

Standard library only: hmac, hashlib, base64, json.
"""
import base64
import hashlib
import hmac
import json
import sys
import time

CURRENT = "sig_7kYjwCurrentKeyForTests3DqU6hzuH"
NEXT = "sig_5ZB6DNextKeyForTests9oTbLmmAqVEk"
OTHER = "sig_3xQbOtherKeyNobodyUsesPn7WcYd"
URL = "https://example.com/api/qstash?x=1"
NOW = int(time.time())

BODY = b'{"hello":"world","n":1}'
BINARY_BODY = bytes(range(256))
LARGE_BODY = bytes(range(256)) * 4096  # 1 MiB, every byte value


def b64url(data, pad=False):
    s = base64.urlsafe_b64encode(data).decode("ascii")
    return s if pad else s.rstrip("=")


def body_hash(body, pad=True):
    return b64url(hashlib.sha256(body).digest(), pad=pad)


def claims(raw=BODY, **over):
    c = {
        "iss": "Upstash",
        "sub": URL,
        "exp": NOW + 300,
        "nbf": NOW,
        "iat": NOW,
        "jti": "jwt_67kxXD6UBAk7DqU6hzuHMDdXFXfP",
        "body": body_hash(raw),
    }
    for k, v in over.items():
        if v is DROP:
            c.pop(k, None)
        else:
            c[k] = v
    return c


DROP = object()
HEADER = {"alg": "HS256", "typ": "JWT"}


def enc_json(obj):
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def sign(signing_input, key, digest=hashlib.sha256):
    k = key if isinstance(key, bytes) else key.encode("utf-8")
    return hmac.new(k, signing_input.encode("ascii"), digest).digest()


def token(payload, key=CURRENT, header=None, pad=False, header_raw=None, payload_raw=None):
    h = header_raw if header_raw is not None else enc_json(header or HEADER)
    p = payload_raw if payload_raw is not None else enc_json(payload)
    signing_input = b64url(h, pad) + "." + b64url(p, pad)
    return signing_input + "." + b64url(sign(signing_input, key), pad)


def latin1(b):
    return b.decode("latin-1")


def sign_requests(requests):
    tokens = []
    for r in requests:
        raw = r.get("body", "").encode("latin-1")
        over = {"body": body_hash(raw, pad=r.get("pad_body", True))}
        over.update(r.get("claims", {}))
        if "url" in r:
            over.setdefault("sub", r["url"])
        for name in r.get("drop", []):
            over[name] = DROP
        tokens.append(token(claims(raw, **over), key=r["key"]))
    return tokens


if __name__ == "__main__" and sys.argv[1:] == ["sign"]:
    json.dump(sign_requests(json.load(sys.stdin)), sys.stdout)
    sys.stdout.write("\n")
    sys.exit(0)


cases = {}


def case(name, signature, expect, body=BODY, url=None, current=CURRENT, nxt=NEXT,
         tolerance=None, payload=None):
    v = {
        "signature": signature,
        "body": latin1(body),
        "current_signing_key": current,
        "next_signing_key": nxt,
        "expect": expect,
    }
    if url is not None:
        v["url"] = url
    if tolerance is not None:
        v["clock_tolerance"] = tolerance
    if expect == "ok" and payload is not None:
        v["claims"] = payload
    assert name not in cases, name
    cases[name] = v


def flip(s, i):
    """Replaces s[i] by another base64url character."""
    return s[:i] + ("B" if s[i] == "A" else "A") + s[i + 1:]


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# -- valid tokens and key rotation
p = claims()
case("ok_current_key", token(p), "ok", url=URL, payload=p)
case("ok_without_url", token(p), "ok", payload=p)
case("ok_next_key_only", token(p, key=NEXT), "ok", url=URL, payload=p)
case("ok_next_key_no_current", token(p, key=NEXT), "ok", current=None, payload=p)
case("ok_current_key_no_next", token(p), "ok", nxt=None, payload=p)
case("bad_neither_key", token(p, key=OTHER), "bad_signature", url=URL)
case("bad_next_key_absent", token(p, key=NEXT), "bad_signature", nxt=None)
# the key is the string's bytes as given, never base64-decoded
case("bad_key_is_base64_decoded", token(p, key=base64.b64decode(CURRENT[4:])), "bad_signature")
case("ok_non_ascii_key", token(p, key="sig_cl\u00e9_\u263a"), "ok", current="sig_cl\u00e9_\u263a", payload=p)

# -- algorithms: only HS256
hp = enc_json({"alg": "none", "typ": "JWT"})
case("alg_none_empty_signature", b64url(hp) + "." + b64url(enc_json(p)) + ".", "bad_signature")
si = b64url(hp) + "." + b64url(enc_json(p))
case("alg_none_with_hmac", si + "." + b64url(sign(si, CURRENT)), "bad_signature")
hs512 = b64url(enc_json({"alg": "HS512", "typ": "JWT"})) + "." + b64url(enc_json(p))
case("alg_hs512", hs512 + "." + b64url(sign(hs512, CURRENT, hashlib.sha512)), "bad_signature")
rs256 = b64url(enc_json({"alg": "RS256", "typ": "JWT"})) + "." + b64url(enc_json(p))
case("alg_rs256", rs256 + "." + b64url(hashlib.sha512(b"not rsa").digest() * 4), "bad_signature")
case("alg_lowercase", token(p, header={"alg": "hs256", "typ": "JWT"}), "bad_signature")
case("alg_missing", token(p, header={"typ": "JWT"}), "bad_signature")
case("alg_not_a_string", token(p, header={"alg": 256, "typ": "JWT"}), "bad_signature")
good = token(p)
si, sig = good.rsplit(".", 1)
case("signature_truncated", si + "." + b64url(b64url_decode(sig)[:31]), "bad_signature")
case("signature_extended", si + "." + b64url(b64url_decode(sig) + b"\0"), "bad_signature")

# -- malformed tokens
parts = good.split(".")
# no signature at all: what a request without the header gives
case("missing_empty", "", "missing")
case("malformed_two_parts", parts[0] + "." + parts[1], "malformed")
case("malformed_one_part", parts[0], "malformed")
case("malformed_four_parts", good + "." + parts[2], "malformed")
case("malformed_trailing_dot", good + ".", "malformed")
case("malformed_bad_char_plus", parts[0] + "." + parts[1] + "." + parts[2][:10] + "+" + parts[2][11:], "malformed")
case("malformed_bad_char_slash", parts[0][:5] + "/" + parts[0][6:] + "." + parts[1] + "." + parts[2], "malformed")
case("malformed_bad_char_space", parts[0] + "." + parts[1] + " ." + parts[2], "malformed")
case("malformed_nul_byte", parts[0] + "." + parts[1] + "." + parts[2][:5] + "\u0000" + parts[2][6:], "malformed")
case("malformed_high_byte", parts[0] + "\u00e9." + parts[1] + "." + parts[2], "malformed")
case("malformed_padding_in_middle", parts[0] + "." + parts[1][:4] + "=" + parts[1][4:] + "." + parts[2], "malformed")
case("malformed_too_much_padding", parts[0] + "." + parts[1] + "." + parts[2] + "==", "malformed")
# a base64 text of length 4k + 1 cannot be decoded (6 bits are not a byte)
case("malformed_length_mod4_1", parts[0] + "." + parts[1] + "." + parts[2] + "A" * ((1 - len(parts[2])) % 4),
     "malformed")
case("malformed_header_length_mod4_1", parts[0] + "A" * ((1 - len(parts[0])) % 4 or 4) + "." + parts[1] + "." + parts[2],
     "malformed")
# the last character carries unused bits: a non-zero value is a second spelling of the same bytes
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
noncanon = parts[2][:-1] + ALPHABET[ALPHABET.index(parts[2][-1]) | 1]
assert noncanon != parts[2] and b64url_decode(noncanon) == b64url_decode(parts[2])
case("malformed_noncanonical_signature", si + "." + noncanon, "malformed")
case("malformed_header_not_json", token(p, header_raw=b"alg=HS256"), "malformed")
case("malformed_header_empty", token(p, header_raw=b""), "malformed")
case("malformed_header_array", token(p, header_raw=b'["alg","HS256"]'), "malformed")
case("malformed_header_string", token(p, header_raw=b'"HS256"'), "malformed")
case("malformed_payload_array", token(p, payload_raw=b'[{"iss":"Upstash"}]'), "malformed")
case("malformed_payload_number", token(p, payload_raw=b"42"), "malformed")
case("malformed_payload_truncated_json", token(p, payload_raw=enc_json(p)[:-1]), "malformed")
case("malformed_payload_trailing_garbage", token(p, payload_raw=enc_json(p) + b"x"), "malformed")
case("malformed_payload_nan", token(p, payload_raw=enc_json(p)[:-1] + b',"x":NaN}'), "malformed")
# deeper than the module's JSON decoder takes (1000 levels, for every response too)
case("malformed_payload_too_deep",
     token(p, payload_raw=enc_json(p)[:-1] + b',"x":' + b"[" * 1001 + b"]" * 1001 + b"}"), "malformed")
case("malformed_too_long", token(claims(pad_claim="x" * 16384)), "malformed")


def token_of_length(n):
    """A valid token exactly n characters long (padding its payload with a claim)."""
    start = max(0, (n - 800) * 3 // 4 - 800)
    for fill in range(start, n):
        pl = claims(pad_claim="x" * fill)
        t = token(pl)
        if len(t) == n:
            return t, pl
        if len(t) > n:
            break
    for fill in range(start, n):  # base64 grows in steps: also try padded segments
        pl = claims(pad_claim="x" * fill)
        t = token(pl, pad=True)
        if len(t) == n:
            return t, pl
    raise SystemExit("no token of length %d" % n)


t, pl = token_of_length(16384)
case("ok_token_at_size_limit", t, "ok", payload=pl)
t, pl = token_of_length(16385)
case("malformed_token_one_byte_over_limit", t, "malformed")
# malformed wins over everything that comes later
case("order_malformed_before_alg", b64url(hp) + "." + b64url(b"[1]") + ".", "malformed")

# -- tampering (one character flipped; the part still decodes to a JSON object)
def tamper(tok, part, check):
    ps = tok.split(".")
    s = ps[part]
    for i in range(len(s) // 2, len(s) - 1):
        t = flip(s, i)
        if check(t):
            ps[part] = t
            return ".".join(ps)
    raise SystemExit("no tampering position found for part %d" % part)


def json_object(s):
    try:
        return isinstance(json.loads(b64url_decode(s).decode("utf-8")), dict)
    except ValueError:
        return False


case("tampered_header", tamper(good, 0, lambda s: json_object(s) and
                                json.loads(b64url_decode(s).decode("utf-8")).get("alg") == "HS256"),
     "bad_signature")
case("tampered_payload", tamper(good, 1, json_object), "bad_signature")
case("tampered_signature", tamper(good, 2, lambda s: True), "bad_signature")

# -- issuer
case("wrong_issuer", token(claims(iss="upstash")), "wrong_issuer")
case("wrong_issuer_missing", token(claims(iss=DROP)), "wrong_issuer")
case("wrong_issuer_not_string", token(claims(iss=1)), "wrong_issuer")
case("order_signature_before_issuer", token(claims(iss="x"), key=OTHER), "bad_signature")

# -- exp / nbf
case("expired_10s", token(claims(exp=NOW - 10)), "expired", tolerance=0)
p = claims(exp=NOW - 10)
case("expired_10s_tolerance_30", token(p), "ok", tolerance=30, payload=p)
case("expired_missing", token(claims(exp=DROP)), "expired")
case("expired_null", token(claims(exp=None)), "expired")
case("expired_string", token(claims(exp=str(NOW + 300))), "expired")
case("order_issuer_before_exp", token(claims(iss="x", exp=NOW - 10)), "wrong_issuer")
# far enough ahead to stay in the future however slowly a run under load reaches it
case("not_yet_valid_600s", token(claims(nbf=NOW + 600)), "not_yet_valid", tolerance=0)
p = claims(nbf=NOW + 10)
case("not_yet_valid_10s_tolerance_30", token(p), "ok", tolerance=30, payload=p)
case("not_yet_valid_string", token(claims(nbf="0")), "not_yet_valid")
p = claims(nbf=0)
case("ok_nbf_zero", token(p), "ok", payload=p)
p = claims(nbf=DROP)
case("ok_nbf_missing", token(p), "ok", payload=p)
p = claims(nbf=None, extra=None)
case("ok_nulls_dropped", token(p), "ok", payload=p)
p = claims(exp=NOW + 300.0, nbf=float(NOW - 1))
assert b'.0,' in enc_json(p)
case("ok_float_times", token(p), "ok", payload=p)
p = claims(meta={"a": [1, 2.0, {"b": None, "c": "d"}], "e": {"f": 3.5}})
case("ok_nested_claims", token(p), "ok", payload=p)
case("order_exp_before_nbf", token(claims(exp=NOW - 10, nbf=NOW + 10)), "expired")

# -- subject
case("url_mismatch", token(claims()), "url_mismatch", url=URL + "&y=2")
case("url_mismatch_trailing_slash", token(claims(sub="https://example.com/")), "url_mismatch",
     url="https://example.com")
case("url_mismatch_missing_sub", token(claims(sub=DROP)), "url_mismatch", url=URL)
p = claims(sub="https://elsewhere.example/")
case("ok_sub_ignored_without_url", token(p), "ok", payload=p)
case("order_nbf_before_url", token(claims(nbf=NOW + 100)), "not_yet_valid", url="https://other/")
case("order_url_before_body", token(claims(body=body_hash(b"other"))), "url_mismatch", url="https://other/")

# -- body
case("body_mismatch", token(claims(body=body_hash(b"other body"))), "body_mismatch")
case("body_mismatch_one_byte_more", token(claims()), "body_mismatch", body=BODY + b" ")
case("body_mismatch_missing_claim", token(claims(body=DROP)), "body_mismatch")
case("body_mismatch_standard_base64", token(claims(body=base64.b64encode(
    hashlib.sha256(b"\xfb\xff" * 40).digest()).decode())), "body_mismatch", body=b"\xfb\xff" * 40)
case("body_mismatch_hex_digest", token(claims(body=hashlib.sha256(BODY).hexdigest())), "body_mismatch")
p = claims(body=body_hash(b""))
case("ok_empty_body", token(p), "ok", body=b"", payload=p)
case("empty_body_mismatch", token(claims()), "body_mismatch", body=b"")
p = claims(body=body_hash(BINARY_BODY))
case("ok_binary_body", token(p), "ok", body=BINARY_BODY, payload=p)
p = claims(body=body_hash(LARGE_BODY))
case("ok_large_body_1mib", token(p), "ok", body=LARGE_BODY, payload=p)
p = claims(body=body_hash(BODY, pad=True))
assert p["body"].endswith("=")
case("ok_body_claim_padded", token(p), "ok", payload=p)
p = claims(body=body_hash(BODY, pad=False))
assert not p["body"].endswith("=")
case("ok_body_claim_unpadded", token(p), "ok", payload=p)

# -- segment padding: parts whose length is not a multiple of 4 need `=`
for extra in range(3):
    p = claims(jti="jwt_" + "a" * (5 + extra))
    if len(enc_json(p)) % 3 != 0:
        break
padded = token(p, pad=True)
assert "=" in padded, padded
case("ok_segments_padded", padded, "ok", payload=p)
case("ok_segments_unpadded", token(p, pad=False), "ok", payload=p)
case("ok_segments_padded_next_key", token(p, key=NEXT, pad=True), "ok", payload=p)

json.dump(cases, sys.stdout, ensure_ascii=True, sort_keys=True)
sys.stdout.write("\n")
