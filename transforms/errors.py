"""One failure record shape for the whole project, and the PII redaction applied to payloads.

Every step that can fail on an input emits a :func:`dead_letter` dict (the ``dead_letters`` table
schema) on its ``dead_letters`` output; nothing is logged and dropped. Payloads are kept as
received except that e-mail addresses and phone numbers are replaced by ``<email:HASH>`` /
``<phone:HASH>`` tokens made with the same keyed hash as the identity graph, so a dead letter can
still be joined to the person it belongs to without storing clear-text PII.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import traceback
from typing import Any

from .identifiers import Hasher, normalize

MAX_STACK = 2000
MAX_MESSAGE = 500
MAX_PAYLOAD = 100_000


class TouchpointError(Exception):
    """An expected, classified failure of one input record."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# JSON "...phone...": "value" / "...email...": "value" pairs, whatever the value looks like.
_PII_PAIR = re.compile(r'("[^"]*(?:phone|email|e_mail|mobile)[^"]*"\s*:\s*)"((?:[^"\\]|\\.)*)"', re.IGNORECASE)
# International-looking phone numbers outside of key/value pairs.
_PHONE = re.compile(r"(?<![\w.])(?:\+|00)\d[\d ().\-]{6,}\d")


#: A redaction token's identifier hash (group 1) inside text: ``<email:0123...cdef>``.
TOKEN_HASH_PATTERN = r"<[a-z_]+:([0-9a-f]{32})>"

_PII_KEY = re.compile(r"e_?mail|phone|mobile", re.IGNORECASE)


def _pii_kind(key: str) -> str | None:
    """email / phone when a field name says it holds one (its last dotted part)."""
    last = key.rsplit(".", 1)[-1]
    if not _PII_KEY.search(last):
        return None
    return "email" if re.search("mail", last, re.IGNORECASE) else "phone"


class Redactor:
    """Replaces e-mails and phone numbers in text with keyed-hash tokens."""

    def __init__(self, hasher: Hasher):
        self._hasher = hasher

    def _token(self, kind: str, value: str) -> str:
        norm = normalize(kind, value)
        return f"<{kind}:{self._hasher.hash(kind, norm)}>" if norm else value

    def _pair(self, match: re.Match) -> str:
        key, value = match.group(1), match.group(2)
        if not value or value.startswith("<"):
            return match.group(0)
        kind = "phone" if re.search("phone|mobile", key, re.IGNORECASE) else "email"
        return f'{key}"{self._token(kind, value)}"'

    def text(self, text: str) -> str:
        text = _PII_PAIR.sub(self._pair, text)
        text = _EMAIL.sub(lambda m: self._token("email", m.group(0)), text)
        return _PHONE.sub(lambda m: self._token("phone", m.group(0)), text)

    def field(self, key: str, value: str) -> str:
        """Redact the value of a named field: the whole value when the name says e-mail or phone
        (``traits.phone`` = ``555 0100`` has no pattern to find), else as :meth:`value`."""
        kind = _pii_kind(key)
        if kind is not None and value and not value.startswith("<"):
            looks = "@" in value if kind == "email" else sum(c.isdigit() for c in value) >= 5
            if looks:  # not "email_verified": "true"
                return self._token(kind, value)
        return self.value(value)

    def value(self, value: str) -> str:
        """Redact a single attribute value (only if it may contain PII: the patterns need '@',
        '+' or '00', or a phone/email key in JSON text)."""
        if "@" in value or "+" in value or "00" in value or '":' in value:
            return self.text(value)
        return value


def payload_text(payload: Any) -> tuple[str, str]:
    """(encoding, text) for a payload of any type: UTF-8 text, base64 for bytes, JSON for records."""
    if isinstance(payload, (bytes, bytearray)):
        try:
            return "text", bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            return "base64", base64.b64encode(bytes(payload)).decode("ascii")
    if isinstance(payload, str):
        return "text", payload
    return "json", json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False)


def dead_letter(
    *,
    run_id: str,
    logical_date: int,
    channel: str,
    source: str,
    failed_step: str,
    reason: str,
    payload: Any,
    redactor: Redactor,
    exc: BaseException | None = None,
    message: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Build a ``dead_letters`` row. Unexpected exceptions keep a truncated stack."""
    encoding, text = payload_text(payload)
    if encoding == "text" or encoding == "json":
        text = redactor.text(text)
    if len(text) > MAX_PAYLOAD:
        text = text[:MAX_PAYLOAD] + "...<truncated>"
    msg = message if message is not None else (str(exc) if exc is not None else reason)
    stack = None
    if exc is not None and not isinstance(exc, TouchpointError):
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-MAX_STACK:]
    ident = hashlib.sha256(f"{channel}\x00{source}\x00{reason}\x00{text}".encode()).hexdigest()[:32]
    return {
        "dead_letter_id": ident,
        "run_id": run_id,
        "logical_date": logical_date,
        "channel": channel,
        "source": source,
        "failed_step": failed_step,
        "reason": reason,
        "error_class": type(exc).__name__ if exc is not None else "TouchpointError",
        "error_message": redactor.text(msg)[:MAX_MESSAGE],
        "stack": stack,
        "event_id": event_id,
        "payload_encoding": encoding,
        "raw_payload": text,
    }
