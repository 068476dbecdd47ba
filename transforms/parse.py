"""Parse and validate raw records of one channel into canonical touchpoints.

``raw records -> ParseTouchpoints(channel) -> {touchpoints, dead_letters}``. Every record ends in
exactly one of the two outputs: JSON that does not decode, schema violations, bad timestamps,
semantic errors and even unexpected exceptions become dead letters with the raw payload and a
reason; nothing is logged and dropped. Counters: ``touchline/<channel>.read``,
``<channel>.parsed`` and ``<channel>.dead_letter.<reason>``.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import orjson
from apache_beam.metrics import Metrics

from .. import schemas
from . import channels
from .context import RunContext
from .errors import Redactor, TouchpointError, dead_letter
from .identifiers import Hasher, resolve_key
from .validate import Conformer

TOUCHPOINTS = "touchpoints"
DEAD_LETTERS = "dead_letters"
NAMESPACE = "touchline"


def decode_json(payload: bytes) -> dict[str, Any]:
    """One JSONL line -> dict, or a TouchpointError naming what is wrong with it.

    Strict JSON (RFC 8259): NaN/Infinity and integers beyond 64 bits are invalid_json."""
    try:
        datum = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise TouchpointError("invalid_encoding", f"not UTF-8: {bad.reason} at byte {bad.start}") from None
        if not text.strip():
            raise TouchpointError("empty_record", "blank line") from None
        raise TouchpointError("invalid_json", str(exc)) from None
    if not isinstance(datum, dict):
        raise TouchpointError("not_an_object", f"expected a JSON object, got {type(datum).__name__}")
    return datum


class ParseFn(beam.DoFn):
    """Raw record -> touchpoint, or a dead letter on the ``dead_letters`` output."""

    def __init__(self, channel: str, context: RunContext):
        self._channel = channel
        self._ctx = context

    def setup(self):
        self._spec = channels.get(self._channel)
        self._conform = Conformer(schemas.load(self._spec.schema_name), dict(self._spec.enum_reasons),
                                  int_strings=self._spec.int_strings)
        self._hasher = Hasher(resolve_key(self._ctx.hash_key_source))
        self._redactor = Redactor(self._hasher)
        self._read = Metrics.counter(NAMESPACE, f"{self._channel}.read")
        self._parsed = Metrics.counter(NAMESPACE, f"{self._channel}.parsed")
        self._failed: dict[str, Any] = {}

    def start_bundle(self):
        # Counted locally and reported once per bundle: a counter update per element costs
        # about as much as validating the element.
        self._n_read = self._n_parsed = 0

    def finish_bundle(self):
        self._read.inc(self._n_read)
        self._parsed.inc(self._n_parsed)

    def _dead(self, source, payload, reason, step, exc=None, message=None, datum=None):
        counter = self._failed.get(reason)
        if counter is None:
            counter = self._failed[reason] = Metrics.counter(NAMESPACE, f"{self._channel}.dead_letter.{reason}")
        counter.inc()
        event_id = datum.get("event_id") if isinstance(datum, dict) else None
        return beam.pvalue.TaggedOutput(
            DEAD_LETTERS,
            dead_letter(
                run_id=self._ctx.run_id,
                logical_date=self._ctx.logical_day,
                channel=self._channel,
                source=source,
                failed_step=step,
                reason=reason,
                payload=payload,
                redactor=self._redactor,
                exc=exc,
                message=message,
                event_id=event_id if isinstance(event_id, str) else None,
            ),
        )

    def process(self, element):
        source, payload, error = element
        self._n_read += 1
        if error is not None:
            reason, error_class, message = error
            yield self._dead(source, payload, reason, "Read", message=f"{error_class}: {message}")
            return
        datum = None
        try:
            datum = payload if isinstance(payload, dict) else decode_json(payload)
            record, unknown = self._conform(datum)
            touchpoint = self._spec.to_touchpoint(record, unknown, self._hasher, self._redactor, source)
        except TouchpointError as exc:
            step = "Decode" if exc.reason in ("invalid_encoding", "empty_record", "invalid_json", "not_an_object") else "Validate"
            yield self._dead(source, payload, exc.reason, step, exc=exc, datum=datum)
        except Exception as exc:  # noqa: BLE001 -- an unexpected failure of one record is still data
            yield self._dead(source, payload, "unexpected_error", "Parse", exc=exc, datum=datum)
        else:
            self._n_parsed += 1
            yield touchpoint


class ParseTouchpoints(beam.PTransform):
    """Raw records of one channel -> ``{touchpoints, dead_letters}``."""

    def __init__(self, channel: str, context: RunContext):
        super().__init__()
        channels.get(channel)  # fail at graph construction for an unknown channel
        self._channel = channel
        self._ctx = context

    def expand(self, raw):
        results = raw | "ParseValidate" >> beam.ParDo(ParseFn(self._channel, self._ctx)).with_outputs(
            DEAD_LETTERS, main=TOUCHPOINTS
        )
        return {TOUCHPOINTS: results[TOUCHPOINTS], DEAD_LETTERS: results[DEAD_LETTERS]}
