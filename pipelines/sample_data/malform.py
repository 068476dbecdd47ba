"""Malformed records, each with exactly one defect and labelled with the reason code the parser emits.

Every malformed record is derived from a real generated event (so it is recognisably about a
touchpoint and carries its PII, which the parser must redact). It replaces that event in the output.

JSONL reasons, checked by the parser in this order (a record has only one defect, so order does
not matter for the label):

* ``invalid_encoding``   bytes that are not UTF-8 (a Latin-1 name inside a string)
* ``empty_record``       blank or whitespace-only line
* ``invalid_json``       truncated line, trailing garbage, single-quoted "JSON"
* ``not_an_object``      a JSON array, string or number
* ``missing_field``      a required field absent or null
* ``wrong_type``         event_id as a number, "http_status": "five hundred", survey.score as "9", ...
* ``unknown_event_type`` event_type not in the channel's enum
* ``invalid_timestamp``  unparseable, impossible, or naive (no offset) occurred_at
* ``invalid_value``      survey score out of range, survey_response without survey,
                         negative amount_minor, currency not three capital letters

Avro records can only have ``invalid_timestamp`` and ``invalid_value`` (the schema enforces the
rest); whole corrupt Avro blocks (``corrupt_avro``) are made by :mod:`.writers`.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable

from .clock import DAY_MS, naive
from .behaviour import SURVEY_RANGE

JSONL_REASONS = (
    "invalid_json", "empty_record", "invalid_encoding", "not_an_object", "missing_field", "wrong_type",
    "unknown_event_type", "invalid_timestamp", "invalid_value",
)
AVRO_REASONS = ("invalid_timestamp", "invalid_value")
CORRUPT_AVRO = "corrupt_avro"
ALL_REASONS = JSONL_REASONS + (CORRUPT_AVRO,)
# reasons after which the parser has no JSON object, hence no event_id
_NO_OBJECT = frozenset(("invalid_json", "empty_record", "invalid_encoding", "not_an_object"))

REQUIRED = {
    "app": ("event_id", "occurred_at", "event_type", "device_id"),
    "web": ("event_id", "occurred_at", "event_type", "cookie_id", "url"),
    "support": ("event_id", "occurred_at", "event_type", "ticket_id", "contact_method"),
    "transactions": ("event_id", "occurred_at", "event_type", "order_id", "amount_minor", "currency"),
}
UNKNOWN_EVENT_TYPES = {
    "app": ("app_foreground", "heartbeat", "push_opened", "screen_viewed"),
    "web": ("page_vew", "scroll", "video_play", "heartbeat"),
    "support": ("ticket_merged", "sla_breached", "note_added"),
    "transactions": ("order_returned", "chargeback", "payment_pending"),
}
UID_FIELDS = ("customer_id", "employee_id", "partner_id")
LATIN1_NAMES = ("Zoë Müller", "José Peña", "Renée Françoise", "Jürgen Weiß", "Ångström Øre")
BAD_CURRENCIES = ("eur", "EURO", "€", "E1R", "usd", "GB")
_MARK = "@@LATIN1@@"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = ("Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed")  # 1970-01-01 was a Thursday


def bad_timestamp(t: int, offset: int, rng: random.Random) -> str:
    """An occurred_at no ISO-8601 parser with an offset requirement accepts."""
    good = naive(t, offset)  # 2026-10-03T10:30:00
    date, hms = good[:10], good[11:]
    y, m, d = date.split("-")
    k = rng.randrange(8)
    if k == 0:
        return good  # naive: no offset
    if k == 1:
        return f"{good}.{rng.randrange(1000):03d}"  # naive with milliseconds
    if k == 2:
        return f"{d}/{m}/{y}"
    if k == 3:
        return f"{d}/{m}/{y} {hms[:5]}"
    if k == 4:
        return f"{date}T{25 + rng.randrange(5)}{hms[2:]}Z"  # hour 25..29
    if k == 5:
        return f"{y}-{m}-{32 + rng.randrange(5)}T{hms}Z"  # day 32..36
    if k == 6:
        day = (t // DAY_MS)
        return f"{_WEEKDAYS[day % 7]}, {d} {_MONTHS[int(m) - 1]} {y} {hms} GMT"  # RFC 2822
    return f"{good}+{25 + rng.randrange(10)}:00"  # offset out of range


def _invalid_value(rec: dict, channel: str, rng: random.Random) -> None:
    survey = rec.get("survey")
    if survey is not None:
        if rng.random() < 0.6:
            lo, hi = SURVEY_RANGE[survey["kind"]]
            score = hi + 1 + rng.randrange(5) if rng.random() < 0.6 else lo - 1 - rng.randrange(3)
            rec["survey"] = {"kind": survey["kind"], "score": score}
        else:
            rec["survey"] = None  # survey_response without a survey answer
        return
    if channel == "transactions":
        if rng.random() < 0.5:
            rec["amount_minor"] = -(rec["amount_minor"] or 1 + rng.randrange(5000))
        else:
            rec["currency"] = BAD_CURRENCIES[rng.randrange(len(BAD_CURRENCIES))]
        return
    # a tracker bug: the event is sent as a survey_response but the answer is missing
    rec["event_type"] = "survey_response"
    rec["survey"] = None


def malform_avro(rec: dict, channel: str, t: int, offset: int, rng: random.Random) -> tuple[dict, str, Any]:
    """(record, reason, event_id) for an Avro channel; the record still matches the Avro schema."""
    out = dict(rec)
    if rng.random() < 0.5:
        out["occurred_at"] = bad_timestamp(t, offset, rng)
        reason = "invalid_timestamp"
    else:
        _invalid_value(out, channel, rng)
        reason = "invalid_value"
    return out, reason, out["event_id"]


def malform_jsonl(rec: dict, channel: str, t: int, offset: int, rng: random.Random,
                  encode: Callable[[dict], str]) -> tuple[bytes, str, Any]:
    """(line without newline, reason, event_id-or-None) for a JSONL channel.

    ``rec`` is the record as the channel's writer would shape it; ``encode`` turns a dict into the
    channel's JSON text.
    """
    reason = JSONL_REASONS[rng.randrange(len(JSONL_REASONS))]
    out = dict(rec)
    if reason == "invalid_json":
        text = encode(out)
        k = rng.randrange(3)
        if k == 0:
            line = text[: rng.randrange(len(text) // 3, len(text) - 1)]  # truncated
        elif k == 1:
            line = text + ("}", " ,", "]", " trailing", '"x"', "}}")[rng.randrange(6)]
        else:
            line = text.replace('"', "'")  # a Python dict repr, not JSON
        return line.encode(), reason, None
    if reason == "empty_record":
        return ("", " ", "   ", "\t", " \t ")[rng.randrange(5)].encode(), reason, None
    if reason == "invalid_encoding":
        props = dict(out.get("properties") or {})
        props["display_name"] = _MARK
        out["properties"] = props
        name = LATIN1_NAMES[rng.randrange(len(LATIN1_NAMES))].encode("latin-1")
        return encode(out).encode().replace(_MARK.encode(), name), reason, None
    if reason == "not_an_object":
        text = encode(out)
        k = rng.randrange(3)
        if k == 0:
            line = f"[{text}]"
        elif k == 1:
            line = json.dumps(text)  # double-encoded: a JSON string
        else:
            line = str(t // 1000)  # a bare number (the event time)
        return line.encode(), reason, None
    if reason == "missing_field":
        field = REQUIRED[channel][rng.randrange(len(REQUIRED[channel]))]
        if rng.random() < 0.5:
            out.pop(field, None)
        else:
            out[field] = None
    elif reason == "wrong_type":
        options = ["event_id", "properties"]
        if channel == "web":
            options += ["http_status", "http_status"]
        if channel == "transactions":
            options += ["amount_minor", "amount_minor"]
        if out.get("survey") is not None:
            options += ["score", "score", "survey"]
        options += [f for f in UID_FIELDS if out.get(f) is not None]
        field = options[rng.randrange(len(options))]
        if field == "event_id":
            out["event_id"] = rng.getrandbits(40)
        elif field == "properties":
            out["properties"] = ("retry=1", ["retry", "1"])[rng.randrange(2)]
        elif field == "http_status":
            out["http_status"] = ("five hundred", "500", "OK")[rng.randrange(3)]
        elif field == "amount_minor":
            out["amount_minor"] = (f"{out['amount_minor'] / 100:.2f}", str(out["amount_minor"]))[rng.randrange(2)]
        elif field == "score":
            out["survey"] = {"kind": out["survey"]["kind"], "score": str(out["survey"]["score"])}
        elif field == "survey":
            out["survey"] = str(out["survey"]["score"])
        else:
            out[field] = int(out[field][1:])  # C12345678 -> 12345678
    elif reason == "unknown_event_type":
        types = UNKNOWN_EVENT_TYPES[channel]
        out["event_type"] = types[rng.randrange(len(types))]
    elif reason == "invalid_timestamp":
        out["occurred_at"] = bad_timestamp(t, offset, rng)
    else:
        _invalid_value(out, channel, rng)
    event_id = out.get("event_id")
    return encode(out).encode(), reason, event_id if isinstance(event_id, str) else None
