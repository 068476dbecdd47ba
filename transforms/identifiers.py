"""Identifier normalization and pseudonymization (keyed hashing).

Clear-text identifiers never leave the step that reads them: each one is normalized (e-mails trimmed
and lower-cased, phones reduced to digits, ids trimmed) and replaced by a keyed hash,
``BLAKE2b(kind + ":" + normalized, key=key, digest_size=16)`` as 32 hex characters. BLAKE2b's keyed
mode is a MAC by design (RFC 7693), as strong as HMAC-SHA256 here and about four times faster.
The same key must be
used by every run that writes to the same warehouse, or identities will not line up.

The key comes from a *key source* string resolved where it is used (in ``DoFn.setup`` on workers),
so it is never pickled into the pipeline graph:

* ``env:NAME`` -- the environment variable NAME (default ``env:TOUCHLINE_HASH_KEY``)
* ``file:/path`` -- the file's bytes (trailing newline stripped)
* ``secret:projects/P/secrets/S/versions/V`` -- Google Secret Manager (production)
* ``demo`` -- a fixed, public key for sample data only
"""

from __future__ import annotations

import hashlib
import os
import re

DEMO_KEY = b"touchline-demo-key-not-secret"
DEFAULT_KEY_SOURCE = "env:TOUCHLINE_HASH_KEY"

# Identifier kinds: priority (lower = stronger) and whether a person has at most one value.
KINDS: dict[str, tuple[int, bool]] = {
    "customer_id": (0, True),
    "employee_id": (0, True),
    "partner_id": (0, True),
    "email": (1, False),
    "phone": (2, False),
    "card_fingerprint": (3, False),
    "device_id": (4, False),
    "cookie_id": (5, False),
}

_NON_DIGITS = re.compile(r"\D+")


class KeyError_(ValueError):
    """The hash key could not be resolved."""


def normalize(kind: str, value: object) -> str:
    """Canonical form of an identifier value; '' means "no identifier"."""
    if value is None:
        return ""
    text = str(value).strip()
    if kind == "email":
        return text.lower()
    if kind == "phone":
        digits = _NON_DIGITS.sub("", text)
        return digits[2:] if digits.startswith("00") else digits
    return text


def resolve_key(source: str) -> bytes:
    """Resolve a key source string to the key bytes, or raise KeyError_ with a fix."""
    if source == "demo":
        return DEMO_KEY
    scheme, _, rest = source.partition(":")
    if scheme == "env":
        value = os.environ.get(rest)
        if not value:
            raise KeyError_(
                f"hash key environment variable {rest} is not set; export {rest}=<secret> "
                f"or pass --hash_key_source=demo for sample data"
            )
        return value.encode()
    if scheme == "file":
        try:
            with open(rest, "rb") as fh:
                key = fh.read().rstrip(b"\r\n")
        except OSError as exc:
            raise KeyError_(f"cannot read hash key file {rest}: {exc.strerror}; check --hash_key_source") from None
        if not key:
            raise KeyError_(f"hash key file {rest} is empty")
        return key
    if scheme == "secret":
        try:
            from google.cloud import secretmanager  # type: ignore[import-not-found]
        except ImportError:
            raise KeyError_(
                "secret: key sources need google-cloud-secret-manager; pip install google-cloud-secret-manager"
            ) from None
        client = secretmanager.SecretManagerServiceClient()
        return client.access_secret_version(name=rest).payload.data
    raise KeyError_(
        f"unknown hash key source {source!r}; use env:NAME, file:/path, secret:projects/... or demo"
    )


def key_fingerprint(key: bytes) -> str:
    """A short, non-reversible label of a key (safe to log and to fold into run ids)."""
    return hashlib.sha256(b"touchline-key-fingerprint:" + key).hexdigest()[:12]


class Hasher:
    """Normalizes and hashes identifiers with one key; cheap to call per element.

    Keeps a bounded cache of recent hashes per worker (devices, cookies and ids repeat a lot)."""

    __slots__ = ("_key", "_cache")
    CACHE_SIZE = 1 << 16

    def __init__(self, key: bytes):
        if len(key) > 64:  # BLAKE2b keys are at most 64 bytes; longer secrets are condensed first
            key = hashlib.sha512(key).digest()
        self._key = key
        self._cache: dict[str, str] = {}

    def hash(self, kind: str, normalized: str) -> str:
        text = f"{kind}:{normalized}"
        cached = self._cache.get(text)
        if cached is None:
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.clear()
            cached = self._cache[text] = hashlib.blake2b(text.encode(), key=self._key, digest_size=16).hexdigest()
        return cached

    def identifier(self, kind: str, value: object) -> dict[str, str] | None:
        norm = normalize(kind, value)
        if not norm:
            return None
        return {"kind": kind, "id_hash": self.hash(kind, norm)}
