"""Credentials: tokens (random, stored as sha256) and passwords (salted scrypt).

A token is 256 random bits, so a fast hash is enough to store it; passwords are
low-entropy and get a salted, slow hash. Comparisons use ``hmac.compare_digest``.
Nothing here ever logs a credential.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from artifactd.errors import Unauthorized

TOKEN_PREFIX = "adt_"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)  # type: ignore[arg-type]
    return "scrypt$%d$%d$%d$%s$%s" % (_SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"],
                                      base64.b64encode(salt).decode(), base64.b64encode(dk).decode())


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        algo, n, r, p, salt, dk = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(dk)))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, base64.b64decode(dk))


def parse_authorization(header: str | None) -> tuple[str, str, str] | None:
    """``("basic", user, password)`` or ``("bearer", "", token)``; None when absent.

    Raises Unauthorized for a malformed header.
    """
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials") from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise Unauthorized("malformed Basic credentials")
        return "basic", user, password
    if scheme in ("bearer", "token"):
        if not value:
            raise Unauthorized("empty bearer token")
        return "bearer", "", value
    raise Unauthorized(f"unsupported authorization scheme {scheme!r}")
