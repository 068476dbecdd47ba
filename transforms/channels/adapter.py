"""Source adapters: external event formats (Segment, GA4 exports, helpdesk and payment exports)
mapped onto the canonical channels, so journeys and scores work on them unchanged.

An adapter is a :class:`~touchline.transforms.channels.base.ChannelSpec` of kind ``adapter``: it has
its own input name (``--segment_input``, counters ``segment.*``, dead letters with channel
``segment``), a raw Avro schema in ``schemas/`` describing the external format *as received*
(open-ended objects such as Segment's ``properties`` are fields of logical type ``json``), and one
method, :meth:`SourceAdapter.map`, that turns a conformed record into a :class:`Mapped` draft:

* the canonical ``channel`` (web, app, support, transactions) and ``event_type`` -- by a documented
  mapping table (``EVENT_MAP``) whose targets are event types of the canonical channels; external
  events the table does not name keep their own name as a snake_case event type (they score as
  engagement unless the model names them);
* identifiers in clear text as ``(kind, value)`` pairs -- hashed here, never stored in clear;
* every other field as attributes (nested objects flatten to dotted keys, lists to JSON text):
  unknown fields are preserved, not dropped.

The shared :meth:`SourceAdapter.to_touchpoint` does the rest the same way for every adapter: the
event id is prefixed with the source name (``segment:<messageId>``), identifiers are normalized
and keyed-hashed, attribute values are redacted (e-mails and phones anywhere, and the whole value of
fields named like an e-mail, phone, name, address or IP become keyed-hash tokens), survey answers
are range-checked. Every failure is a ``TouchpointError`` with a reason, i.e. a dead letter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Mapping

from ..errors import Redactor, TouchpointError
from ..identifiers import KINDS, Hasher
from .base import MAX_TIME, MICROS_PER_DAY, MIN_TIME, SURVEY_RANGES, EPOCH, ChannelSpec

_MIN_MICROS = (MIN_TIME - EPOCH).days * MICROS_PER_DAY
_MAX_MICROS = (MAX_TIME - EPOCH).days * MICROS_PER_DAY
_SLUG = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: attribute names (last dotted part, case and separators ignored) whose whole value is personal data
_PERSONAL = frozenset({"firstname", "lastname", "fullname", "username", "address", "line1", "line2", "street",
                       "postalcode", "zip", "zipcode", "birthday", "dateofbirth", "ip", "ipaddress", "last4"})
#: ... and ``name`` when it names a person (under these parts; not an app's, a page's or a library's name)
_PERSON_PARTS = frozenset({"traits", "billing_details", "shipping", "requester", "customer", "user", "cardholder", "owner"})
MAX_EVENT_TYPE = 64


@dataclass
class Mapped:
    """What an adapter makes of one external record (clear text; :meth:`SourceAdapter.to_touchpoint`
    pseudonymizes it)."""

    event_id: str
    channel: str
    event_type: str
    event_time: int  # microseconds since the epoch, UTC
    identifiers: list[tuple[str, Any]] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    role: str = "customer"
    session_id: str | None = None
    ticket_id: str | None = None
    order_id: str | None = None
    survey: tuple[str, int] | None = None
    amount: Decimal | None = None
    currency: str | None = None


def event_slug(name: str) -> str:
    """``"Video Played"`` / ``videoPlayed`` -> ``video_played`` (an event type of our own)."""
    return _SLUG.sub("_", _CAMEL.sub("_", name.strip()).lower()).strip("_")[:MAX_EVENT_TYPE]


def epoch_time(value: Any, field_name: str, unit: int) -> int:
    """Seconds (unit 1_000_000), millis (1000) or micros (1) since the epoch -> micros, range-checked."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TouchpointError("wrong_type", f"{field_name}: expected a number, got {type(value).__name__} {value!r:.40}")
    micros = int(value * unit)
    if not _MIN_MICROS <= micros < _MAX_MICROS:
        raise TouchpointError("invalid_timestamp", f"{field_name}: {value!r} is outside 2000..2100")
    return micros


def obj(value: Any, field_name: str) -> dict[str, Any]:
    """An optional JSON object field: {} when absent, wrong_type when not an object."""
    if value is None:
        return {}
    if isinstance(value, str):  # a json field read from Avro or BigQuery arrives as text
        try:
            value = json.loads(value)
        except ValueError:
            raise TouchpointError("wrong_type", f"{field_name}: expected an object, got text that is not JSON") from None
    if not isinstance(value, dict):
        raise TouchpointError("wrong_type", f"{field_name}: expected an object, got {type(value).__name__}")
    return value


def dig(value: Mapping[str, Any] | None, *path: str) -> Any:
    """value[a][b]... or None where any step is missing or not an object."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def text(value: Any) -> str | None:
    """Scalar -> str (ids sent as numbers), None stays None."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Nested objects -> dotted keys (``context.page.url``); lists and scalars stay values."""
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif value is not None:
        out[prefix] = value


def flat(prefix: str, value: Any) -> dict[str, Any]:
    """:func:`flatten` into a new dict."""
    out: dict[str, Any] = {}
    flatten(prefix, value, out)
    return out


def _personal(key: str) -> bool:
    parts = key.split(".")
    last = parts[-1].replace("_", "").replace("-", "").lower()
    if last in _PERSONAL:
        return True
    return last == "name" and len(parts) > 1 and parts[-2] in _PERSON_PARTS


class SourceAdapter(ChannelSpec):
    """Base class of source adapters: subclass, set ``name``, ``schema_name``, ``produces`` and
    ``EVENT_MAP``, implement :meth:`map`, register (``touchline.channels`` entry point group)."""

    kind = "adapter"
    optional_under_input = True
    reads_tables = False
    #: external event name -> canonical event type (documented in docs/extending.md; the contract
    #: kit checks every target is an event type of a canonical channel)
    EVENT_MAP: ClassVar[Mapping[str, str]] = {}
    #: top-level fields never copied to attributes (identifiers, transport metadata)
    not_attributes: ClassVar[frozenset[str]] = frozenset()

    def map(self, record: dict[str, Any], unknown: Mapping[str, Any]) -> Mapped:
        raise NotImplementedError

    # -- helpers for map() ---------------------------------------------------------------------
    def mapped_type(self, name: str) -> str:
        """The canonical event type of an external event name, else its own name as a slug."""
        found = self.EVENT_MAP.get(name)
        if found is not None:
            return found
        slug = event_slug(name)
        if not slug:
            raise TouchpointError("invalid_value", f"event name {name!r:.60} has no letters or digits")
        return slug

    def rest(self, record: dict[str, Any], unknown: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Attributes from every field not consumed elsewhere (``not_attributes`` and ``skip``),
        unknown fields included."""
        out: dict[str, Any] = {}
        for key, value in {**record, **unknown}.items():
            if key not in self.not_attributes and key not in skip and value is not None:
                flatten(key, value, out)
        return out

    # -- the shared part -----------------------------------------------------------------------
    def to_touchpoint(self, record: dict[str, Any], unknown: Mapping[str, Any], hasher: Hasher, redactor: Redactor,
                      source: str) -> dict[str, Any]:
        m = self.map(record, unknown)
        if m.channel not in self.channels_produced():
            raise TouchpointError("invalid_value", f"{self.name} mapped a record to channel {m.channel!r}, "
                                                   f"not one of {list(self.channels_produced())}")
        if not m.event_type or len(m.event_type) > MAX_EVENT_TYPE:
            raise TouchpointError("invalid_value", f"event type {m.event_type!r:.80} is empty or too long")
        if m.survey is not None:
            kind, score = m.survey
            if kind not in SURVEY_RANGES:
                raise TouchpointError("invalid_value", f"survey kind {kind!r:.20} is not one of nps, csat, ces")
            low, high = SURVEY_RANGES[kind]
            if isinstance(score, bool) or not isinstance(score, int) or not low <= score <= high:
                raise TouchpointError("invalid_value", f"survey score: {kind} must be {low}..{high}, got {score!r:.20}")
        identifiers, seen = [], set()
        for kind, value in m.identifiers:
            if kind not in KINDS:
                raise ValueError(f"{self.name}: unknown identifier kind {kind!r}")
            ident = hasher.identifier(kind, text(value)) if value is not None else None
            if ident is not None and ident["id_hash"] not in seen:
                seen.add(ident["id_hash"])
                identifiers.append(ident)
        attributes: dict[str, str] = {}
        for key, value in m.attributes.items():
            if value is None:
                continue
            value = value if isinstance(value, str) else text(value) if not isinstance(value, (dict, list)) else \
                json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
            if _personal(key) and value:
                value = f"<pii:{hasher.hash('pii', value.strip())}>"
            attributes[key] = redactor.field(key, value)
        return {
            "event_id": f"{self.name}:{m.event_id}",
            "channel": m.channel,
            "event_type": m.event_type,
            "event_time": m.event_time,
            "event_date": m.event_time // MICROS_PER_DAY,
            "person_id": None,
            "role": m.role,
            "identifiers": identifiers,
            "session_id": m.session_id,
            "ticket_id": m.ticket_id,
            "order_id": m.order_id,
            "survey_kind": m.survey[0] if m.survey else None,
            "survey_score": m.survey[1] if m.survey else None,
            "amount": m.amount,
            "currency": m.currency,
            "attributes": dict(sorted(attributes.items())),
            "source": source,
            "origin": self.name,
        }


__all__ = ["SourceAdapter", "Mapped", "event_slug", "epoch_time", "obj", "dig", "text", "flatten", "flat"]
