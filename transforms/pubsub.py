"""Touchpoint messages on Pub/Sub: the wire format, and messages -> raw records.

One topic carries every channel (see docs/streaming.md for why); a message is one raw input record:

* ``data`` -- the record's bytes exactly as a JSONL producer wrote them (the line, without its
  newline), or, for a record read from an Avro file, its JSON text (the same text a dead letter
  shows for it), so consumers see one format. A record that could not be read at all (a corrupt
  Avro block) travels as its raw bytes plus the ``read_error*`` attributes.
* attributes -- ``channel`` (required; a registered channel name), ``event_time`` (the event time
  in milliseconds since the epoch; the pipeline's event-time clock, so every message must carry a
  valid one: :func:`encode_message` falls back to the publish time when the record has no parseable
  timestamp), ``event_id`` (informational), and ``read_error``/``read_error_class``/
  ``read_error_message`` for unreadable records.

:class:`DecodeMessages` turns messages into the ``(channel, (source, payload, error))`` records the
batch transforms take (``source`` is ``pubsub:<subscription>/<message id>``: stable across
redeliveries of one message, so its dead letters keep their ids); a message without a registered
channel becomes an ``unknown_channel`` dead letter. Counters: ``<channel>.received``.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from . import channels
from .channels.base import parse_timestamp
from .context import RunContext
from .errors import Redactor, TouchpointError, dead_letter, payload_text
from .identifiers import Hasher, resolve_key
from .parse import DEAD_LETTERS, NAMESPACE

CHANNEL_ATTRIBUTE = "channel"
EVENT_TIME_ATTRIBUTE = "event_time"
EVENT_ID_ATTRIBUTE = "event_id"
READ_ERROR_ATTRIBUTE = "read_error"
READ_ERROR_CLASS_ATTRIBUTE = "read_error_class"
READ_ERROR_MESSAGE_ATTRIBUTE = "read_error_message"
RECORDS = "records"
UNKNOWN_CHANNEL = "unknown"
SOURCE_PREFIX = "pubsub:"
MAX_ATTRIBUTE = 1024  # Pub/Sub allows 1024 bytes per attribute value


def _event_time_millis(channel: str, datum: Any) -> int | None:
    if not isinstance(datum, dict):
        return None
    field = channels.get(channel).timestamp_field
    value = datum.get(field)
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value, field) // 1000
    except TouchpointError:
        return None


def _peek_json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None


def encode_message(channel: str, record: tuple, now_millis: int | None = None) -> tuple[bytes, dict[str, str]]:
    """A raw record ``(source, payload, error)`` of a channel (as the file sources emit it) ->
    ``(data, attributes)`` of its Pub/Sub message."""
    _source, payload, error = record
    attributes = {CHANNEL_ATTRIBUTE: channel}
    if isinstance(payload, dict):
        data = payload_text(payload)[1].encode("utf-8")
        datum = payload
    else:
        data = bytes(payload)
        datum = _peek_json(data) if error is None else None
    if error is not None:
        reason, error_class, message = error
        attributes[READ_ERROR_ATTRIBUTE] = reason
        attributes[READ_ERROR_CLASS_ATTRIBUTE] = error_class
        attributes[READ_ERROR_MESSAGE_ATTRIBUTE] = message.encode("utf-8")[:MAX_ATTRIBUTE].decode("utf-8", "ignore")
    millis = _event_time_millis(channel, datum)
    if millis is None:  # the record still must reach the dead letters: stamp it with the publish time
        millis = int(time.time() * 1000) if now_millis is None else now_millis
    attributes[EVENT_TIME_ATTRIBUTE] = str(millis)
    event_id = datum.get("event_id") if isinstance(datum, dict) else None
    if isinstance(event_id, str) and event_id and len(event_id.encode("utf-8")) <= MAX_ATTRIBUTE:
        attributes[EVENT_ID_ATTRIBUTE] = event_id
    return data, attributes


def message_source(subscription: str, message_id: str | None, data: bytes) -> str:
    """Lineage of a message: ``pubsub:<subscription>/<message id>`` (a content digest if the runner
    gives no id)."""
    ident = message_id or "sha256-" + hashlib.sha256(data).hexdigest()[:32]
    return f"{SOURCE_PREFIX}{subscription}/{ident}"


def decode_message(message, subscription: str) -> tuple[str | None, tuple, str | None]:
    """A ``PubsubMessage`` -> ``(channel, (source, payload, error), channel attribute)``; the
    channel is None unless the attribute names a registered channel."""
    attributes = dict(message.attributes or {})
    data = bytes(message.data or b"")
    source = message_source(subscription, getattr(message, "message_id", None), data)
    error = None
    if READ_ERROR_ATTRIBUTE in attributes:
        error = (
            attributes[READ_ERROR_ATTRIBUTE],
            attributes.get(READ_ERROR_CLASS_ATTRIBUTE, "ReadError"),
            attributes.get(READ_ERROR_MESSAGE_ATTRIBUTE, ""),
        )
    claimed = attributes.get(CHANNEL_ATTRIBUTE)
    return (claimed if claimed in channels.names() else None), (source, data, error), claimed


class _DecodeFn(beam.DoFn):
    def __init__(self, subscription: str, context: RunContext):
        self._subscription = subscription
        self._ctx = context

    def setup(self):
        self._redactor = Redactor(Hasher(resolve_key(self._ctx.hash_key_source)))
        self._received = {name: Metrics.counter(NAMESPACE, f"{name}.received") for name in channels.names()}
        self._received[UNKNOWN_CHANNEL] = Metrics.counter(NAMESPACE, f"{UNKNOWN_CHANNEL}.received")
        self._unknown = Metrics.counter(NAMESPACE, f"{UNKNOWN_CHANNEL}.dead_letter.unknown_channel")

    def process(self, message):
        channel, record, claimed = decode_message(message, self._subscription)
        if channel is not None:
            self._received[channel].inc()
            yield channel, record
            return
        self._received[UNKNOWN_CHANNEL].inc()
        self._unknown.inc()
        source, data, _error = record
        claimed_text = "no channel attribute" if claimed is None else f"channel attribute {claimed[:40]!r}"
        yield beam.pvalue.TaggedOutput(
            DEAD_LETTERS,
            dead_letter(
                run_id=self._ctx.run_id,
                logical_date=self._ctx.logical_day,
                channel=UNKNOWN_CHANNEL,
                source=source,
                failed_step="Route",
                reason="unknown_channel",
                payload=data,
                redactor=self._redactor,
                message=f"{claimed_text}; every message needs {CHANNEL_ATTRIBUTE}= one of {', '.join(channels.names())}",
            ),
        )


class DecodeMessages(beam.PTransform):
    """``PubsubMessage``s -> ``{records: (channel, (source, payload, error)), dead_letters}``."""

    def __init__(self, subscription: str, context: RunContext):
        super().__init__()
        self._subscription = subscription
        self._ctx = context

    def expand(self, messages):
        results = messages | "Decode" >> beam.ParDo(_DecodeFn(self._subscription, self._ctx)).with_outputs(
            DEAD_LETTERS, main=RECORDS
        )
        return {RECORDS: results[RECORDS], DEAD_LETTERS: results[DEAD_LETTERS]}


class ReadTouchpointMessages(beam.PTransform):
    """A Pub/Sub subscription -> ``PubsubMessage``s stamped with their event time.

    Beam's ``ReadFromPubSub`` with attributes and ``timestamp_attribute`` (so the runner's watermark
    follows event time on Dataflow). No ``id_label``: the DirectRunner refuses it, and on Dataflow
    it would silently drop copies before they are counted (see docs/streaming.md)."""

    def __init__(self, subscription: str, timestamp_attribute: str = EVENT_TIME_ATTRIBUTE):
        super().__init__()
        self._subscription = subscription
        self._timestamp_attribute = timestamp_attribute

    def expand(self, pbegin):
        return pbegin | "ReadFromPubSub" >> beam.io.ReadFromPubSub(
            subscription=self._subscription,
            with_attributes=True,
            timestamp_attribute=self._timestamp_attribute,
        )


class _RouteFn(beam.DoFn):
    def process(self, element):
        channel, record = element
        yield beam.pvalue.TaggedOutput(channel, record)


class RouteByChannel(beam.PTransform):
    """``(channel, record)`` -> ``{channel: record}``, one output per registered channel (one step:
    the DirectRunner pays a fixed cost per step and bundle)."""

    def __init__(self, channel_names: list[str]):
        super().__init__()
        self._names = list(channel_names)

    def expand(self, records):
        routed = records | "Route" >> beam.ParDo(_RouteFn()).with_outputs(*self._names)
        return {name: routed[name] for name in self._names}
