"""Parse and validate raw records of one channel into canonical touchpoints.

:class:`RecordParser` turns one raw record into a touchpoint or a dead letter; it is wrapped twice:
``raw records -> ParseTouchpoints(channel) -> {touchpoints, dead_letters}`` per element (streaming)
and :class:`ParseSplits` per file split, emitting touchpoint batches by dedup bucket (batch). Every
record ends in exactly one of the two outputs: JSON that does not decode, schema violations, bad timestamps,
semantic errors and even unexpected exceptions become dead letters with the raw payload and a
reason; nothing is logged and dropped. Counters: ``touchline/<channel>.read``,
``<channel>.parsed`` and ``<channel>.dead_letter.<reason>``.
"""

from __future__ import annotations

import zlib
from typing import Any

import apache_beam as beam
import orjson
from apache_beam.metrics import Metrics

from .. import schemas
from . import channels
from . import batches
from .batches import CHUNK_ROWS
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


class RecordParser:
    """Raw record ``(source, payload, error)`` of one input source -> ``(touchpoint, None)`` or
    ``(None, dead letter)``: the one implementation of decoding, validation, channel mapping and
    identifier hashing. :class:`ParseFn` calls it per element (streaming), :class:`ParseSplits` in a
    loop over a file split (batch). Build it where it runs (``DoFn.setup``): it resolves the key."""

    def __init__(self, channel: str, context: RunContext):
        self.channel = channel
        self._ctx = context
        self._spec = channels.get(channel)
        self._conform = Conformer(schemas.load(self._spec.schema_name), dict(self._spec.enum_reasons),
                                  int_strings=self._spec.int_strings)
        self._hasher = Hasher(resolve_key(context.hash_key_source))
        self._redactor = Redactor(self._hasher)

    def _dead(self, source, payload, reason, step, exc=None, message=None, datum=None) -> dict:
        event_id = datum.get("event_id") if isinstance(datum, dict) else None
        return dead_letter(
            run_id=self._ctx.run_id,
            logical_date=self._ctx.logical_day,
            channel=self.channel,
            source=source,
            failed_step=step,
            reason=reason,
            payload=payload,
            redactor=self._redactor,
            exc=exc,
            message=message,
            event_id=event_id if isinstance(event_id, str) else None,
        )

    def __call__(self, element) -> tuple[dict | None, dict | None]:
        source, payload, error = element
        if error is not None:
            reason, error_class, message = error
            return None, self._dead(source, payload, reason, "Read", message=f"{error_class}: {message}")
        datum = None
        try:
            datum = payload if isinstance(payload, dict) else decode_json(payload)
            record, unknown = self._conform(datum)
            return self._spec.to_touchpoint(record, unknown, self._hasher, self._redactor, source), None
        except TouchpointError as exc:
            step = "Decode" if exc.reason in ("invalid_encoding", "empty_record", "invalid_json", "not_an_object") else "Validate"
            return None, self._dead(source, payload, exc.reason, step, exc=exc, datum=datum)
        except Exception as exc:  # noqa: BLE001 -- an unexpected failure of one record is still data
            return None, self._dead(source, payload, "unexpected_error", "Parse", exc=exc, datum=datum)


class _Counts:
    """Parse counters of one source (``<source>.read``, ``.parsed``, ``.dead_letter.<reason>``),
    added up locally and reported in bulk: a counter update per element costs about as much as
    validating the element."""

    def __init__(self, channel: str):
        self._channel = channel
        self._read = Metrics.counter(NAMESPACE, f"{channel}.read")
        self._parsed = Metrics.counter(NAMESPACE, f"{channel}.parsed")
        self._failed: dict[str, Any] = {}

    def report(self, read: int, parsed: int, reasons: dict[str, int]) -> None:
        self._read.inc(read)
        self._parsed.inc(parsed)
        for reason, n in reasons.items():
            counter = self._failed.get(reason)
            if counter is None:
                counter = self._failed[reason] = Metrics.counter(NAMESPACE, f"{self._channel}.dead_letter.{reason}")
            counter.inc(n)


class ParseFn(beam.DoFn):
    """Raw record -> touchpoint, or a dead letter on the ``dead_letters`` output (per element:
    the streaming pipeline and the contract kit)."""

    def __init__(self, channel: str, context: RunContext):
        self._channel = channel
        self._ctx = context

    def setup(self):
        self._parse = RecordParser(self._channel, self._ctx)
        self._counts = _Counts(self._channel)

    def start_bundle(self):
        self._n_read = self._n_parsed = 0
        self._reasons: dict[str, int] = {}

    def finish_bundle(self):
        self._counts.report(self._n_read, self._n_parsed, self._reasons)

    def process(self, element):
        self._n_read += 1
        touchpoint, dead = self._parse(element)
        if dead is not None:
            self._reasons[dead["reason"]] = self._reasons.get(dead["reason"], 0) + 1
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead)
        else:
            self._n_parsed += 1
            yield touchpoint


class ParseSplits(batches.BatchDoFn):
    """Batch parsing: a file split ``(source, path, start, end)`` -- or ``(source, [raw records])``
    from a table read -- -> touchpoint batches ``(bucket of event_id, packed Arrow table)`` for
    deduplication, and the split's dead letters as one ``(file key, packed rows)`` on the ``dead_letters``
    output (the key names the split: a retry stages the same file again). Every
    record goes through :class:`RecordParser`, exactly as in streaming; counters are reported once
    per split."""

    def __init__(self, context: RunContext):
        self._ctx = context

    def setup(self):
        self._parsers: dict[str, RecordParser] = {}
        self._counts: dict[str, _Counts] = {}
        self._spec = schemas.table_schema("touchpoints")

    def _work(self, element):
        from .sources import read_range

        if len(element) == 2:
            source, records = element
            file_key = f"parse-{zlib.crc32(repr((source, records[0][0])).encode()):08x}"
        else:
            source, path, start, end = element
            records = read_range((path, start, end))
            file_key = f"parse-{zlib.crc32(repr(element).encode()):08x}"
        parser = self._parsers.get(source)
        if parser is None:
            parser = self._parsers[source] = RecordParser(source, self._ctx)
            self._counts[source] = _Counts(source)
        touchpoints: list[dict] = []
        dead: list[dict] = []
        reasons: dict[str, int] = {}
        read = parsed = 0
        for record in records:
            read += 1
            touchpoint, failed = parser(record)
            if failed is not None:
                dead.append(failed)
                reasons[failed["reason"]] = reasons.get(failed["reason"], 0) + 1
                continue
            parsed += 1
            touchpoints.append(touchpoint)
            if len(touchpoints) >= CHUNK_ROWS:
                yield from self._keyed(touchpoints)
                touchpoints = []
        yield from self._keyed(touchpoints)
        if dead:
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, (file_key, self._ctx.shuffle.pack(dead)))
        self._counts[source].report(read, parsed, reasons)

    def _keyed(self, touchpoints: list[dict]):
        if not touchpoints:
            return
        table = batches.from_rows(touchpoints, self._spec)
        yield from self._ctx.shuffle.split(table, (tp["event_id"] for tp in touchpoints))


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
