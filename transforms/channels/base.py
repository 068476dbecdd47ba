"""What a channel is: a raw Avro schema plus a declarative mapping to the canonical touchpoint.

A channel module subclasses :class:`ChannelSpec`, declares which raw fields are identifiers,
references and attributes, and adds any semantic checks in :meth:`ChannelSpec.validate`. The shared
:meth:`ChannelSpec.to_touchpoint` does the rest, so every channel produces touchpoints the same way.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any, ClassVar, Mapping

from ..errors import Redactor, TouchpointError
from ..identifiers import Hasher

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MIN_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
MAX_TIME = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
MICROS_PER_DAY = 86_400_000_000

SURVEY_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}

# A unique id field and the role a touchpoint made with it is in, strongest first.
ROLE_FIELDS = (("employee_id", "employee"), ("partner_id", "partner"), ("customer_id", "customer"))


def parse_timestamp(value: str, field: str = "occurred_at") -> int:
    """ISO-8601 with an explicit offset -> microseconds since the epoch (UTC)."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise TouchpointError("invalid_timestamp", f"{field}: {value!r:.60} is not an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        raise TouchpointError(
            "invalid_timestamp", f"{field}: {value!r:.60} has no UTC offset (add Z or +hh:mm)"
        )
    if not MIN_TIME <= parsed < MAX_TIME:
        raise TouchpointError("invalid_timestamp", f"{field}: {value!r:.60} is outside 2000..2100")
    return (parsed - EPOCH) // dt.timedelta(microseconds=1)


def attribute_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


class ChannelSpec:
    """Declarative description of a channel. Subclass, set the class attributes, register."""

    name: ClassVar[str]
    schema_name: ClassVar[str]
    #: raw field -> identifier kind (see touchline.transforms.identifiers.KINDS)
    identifier_fields: ClassVar[Mapping[str, str]] = {}
    #: touchpoint reference column (session_id/ticket_id/order_id) -> raw field
    reference_fields: ClassVar[Mapping[str, str]] = {}
    #: raw fields copied into the touchpoint's attributes map (as text)
    attribute_fields: ClassVar[tuple[str, ...]] = ()
    timestamp_field: ClassVar[str] = "occurred_at"
    default_role: ClassVar[str] = "customer"
    #: "channel" (records already in Touchline's raw format of this channel) or "adapter" (an
    #: external format mapped onto canonical channels, see touchline.transforms.channels.adapter)
    kind: ClassVar[str] = "channel"
    #: canonical channels this source's touchpoints belong to (empty: its own name)
    produces: ClassVar[tuple[str, ...]] = ()
    #: with ``--input ROOT``, read ``ROOT/<name>/`` only when that folder exists (instead of
    #: requiring it): adapters and optional plug-ins
    optional_under_input: ClassVar[bool] = False
    #: accept decimal strings for int/long fields (BigQuery JSON exports write INT64 as strings)
    int_strings: ClassVar[bool] = False
    #: can be read from a BigQuery table whose columns are the raw schema (``--<name>_table``)
    reads_tables: ClassVar[bool] = True
    #: top-level enum fields whose unknown values are the reason ``unknown_event_type`` (others:
    #: ``invalid_value``)
    enum_reasons: ClassVar[Mapping[str, str]] = {"event_type": "unknown_event_type"}

    @classmethod
    def channels_produced(cls) -> tuple[str, ...]:
        return cls.produces or (cls.name,)

    def validate(self, record: dict[str, Any]) -> None:
        """Semantic checks beyond the schema; raise TouchpointError('invalid_value', ...)."""
        survey = record.get("survey")
        if record.get("event_type") == "survey_response" and survey is None:
            raise TouchpointError("invalid_value", "survey_response without a survey answer")
        if survey is not None:
            if record.get("event_type") != "survey_response":
                raise TouchpointError("invalid_value", f"survey answer on a {record.get('event_type')} event")
            low, high = SURVEY_RANGES[survey["kind"]]
            if not low <= survey["score"] <= high:
                raise TouchpointError(
                    "invalid_value", f"survey.score: {survey['kind']} must be {low}..{high}, got {survey['score']}"
                )

    def role(self, record: dict[str, Any]) -> str:
        for field, role in ROLE_FIELDS:
            if record.get(field):
                return role
        return self.default_role

    def enrich(self, record: dict[str, Any], touchpoint: dict[str, Any]) -> None:
        """Channel-specific touchpoint columns (e.g. amount). Default: nothing."""

    def to_touchpoint(
        self,
        record: dict[str, Any],
        unknown: Mapping[str, Any],
        hasher: Hasher,
        redactor: Redactor,
        source: str,
    ) -> dict[str, Any]:
        """Canonical touchpoint from a conformed raw record (raises TouchpointError)."""
        event_time = parse_timestamp(record[self.timestamp_field], self.timestamp_field)
        self.validate(record)
        identifiers = []
        seen = set()
        for field, kind in self.identifier_fields.items():
            value = record.get(field)
            if value is not None:
                ident = hasher.identifier(kind, value)
                if ident is not None and ident["id_hash"] not in seen:
                    seen.add(ident["id_hash"])
                    identifiers.append(ident)
        attributes: dict[str, str] = {}
        properties = record.get("properties")
        if properties:
            for key, value in properties.items():
                if value is not None:
                    attributes[key] = redactor.value(value)
        for field in self.attribute_fields:
            value = record.get(field)
            if value is not None:
                attributes[field] = redactor.value(value if value.__class__ is str else attribute_text(value))
        if unknown:
            for key, value in unknown.items():
                if value is not None:
                    attributes[key] = redactor.value(attribute_text(value))
        survey = record.get("survey")
        touchpoint = {
            "event_id": record["event_id"],
            "channel": self.name,
            "event_type": record["event_type"],
            "event_time": event_time,
            "event_date": event_time // MICROS_PER_DAY,
            "person_id": None,
            "role": self.role(record),
            "identifiers": identifiers,
            "session_id": None,
            "ticket_id": None,
            "order_id": None,
            "survey_kind": survey["kind"] if survey else None,
            "survey_score": survey["score"] if survey else None,
            "amount": None,
            "currency": None,
            "attributes": dict(sorted(attributes.items())) if len(attributes) > 1 else attributes,
            "source": source,
            "origin": self.name,
        }
        for column, field in self.reference_fields.items():
            touchpoint[column] = record.get(field)
        self.enrich(record, touchpoint)
        return touchpoint


def minor_to_amount(minor: int) -> Decimal:
    return Decimal(minor).scaleb(-2)
