"""Deduplicate touchpoints by event_id in a stream, within an event-time horizon.

The streaming counterpart of :mod:`.dedup` (same digest, same counters, same dead-letter shape), but
a stream cannot wait for every copy: per event_id, Beam state remembers the digest and source of the
**first version seen**, and an event-time timer forgets it once the watermark passes the first
copy's event time plus the horizon. Until then, exact copies are counted
(``<channel>.duplicates``) and dropped, and copies with different content become
``conflicting_duplicate`` dead letters. State per event_id is two short strings.

Batch keeps the version with the smallest digest (order-independent); a stream must emit the first
version at once, so it keeps the first one delivered. For conflict-free input both agree; for a
conflict the scheduled batch replay rewrites the row by key (see docs/streaming.md). A copy that
arrives after the horizon is either ``too_late`` (the horizon is at least the allowed lateness,
checked by the stream's options) or merged by key in the warehouse, never a second row.

Why not ``apache_beam.transforms.deduplicate.DeduplicatePerKey``: it drops later copies silently,
without telling exact copies from conflicting versions and without counting them -- Touchline must
account for every message.
"""

from __future__ import annotations

from typing import Any, Tuple

import apache_beam as beam
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp

from .context import RunContext
from .dedup import conflict_dead_letter, content_digest
from .errors import Redactor
from .identifiers import Hasher, resolve_key
from .parse import DEAD_LETTERS, NAMESPACE, TOUCHPOINTS

MICROS = 1_000_000


class _FirstVersionFn(beam.DoFn):
    FIRST = ReadModifyWriteStateSpec("first", coders.TupleCoder((coders.StrUtf8Coder(), coders.StrUtf8Coder())))
    EXPIRY = TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, context: RunContext, horizon: float):
        self._ctx = context
        self._horizon = int(horizon * MICROS)

    def setup(self):
        self._redactor = Redactor(Hasher(resolve_key(self._ctx.hash_key_source)))
        self._limit = GlobalWindow().max_timestamp().micros
        self._counters: dict[tuple[str, str], Any] = {}

    def _count(self, name: str, channel: str) -> None:
        counter = self._counters.get((name, channel))
        if counter is None:
            counter = self._counters[(name, channel)] = Metrics.counter(NAMESPACE, f"{channel}.{name}")
        counter.inc()

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        first=beam.DoFn.StateParam(FIRST),
        expiry=beam.DoFn.TimerParam(EXPIRY),
    ):
        _event_id, touchpoint = element
        digest = content_digest(touchpoint)
        seen = first.read()
        if seen is None:
            first.write((digest, touchpoint["source"]))
            expiry.set(Timestamp(micros=min(timestamp.micros + self._horizon, self._limit)))
            yield touchpoint
        elif seen[0] == digest:
            self._count("duplicates", touchpoint["channel"])
        else:
            self._count("dead_letter.conflicting_duplicate", touchpoint["channel"])
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTERS,
                conflict_dead_letter(self._ctx, self._redactor, touchpoint, f"kept the version delivered first ({seen[1]})"),
            )

    @on_timer(EXPIRY)
    def _forget(self, first=beam.DoFn.StateParam(FIRST)):
        first.clear()


class DeduplicateTouchpointsStreaming(beam.PTransform):
    """Touchpoints (any channels, stamped with event time) -> ``{touchpoints, dead_letters}``:
    one row per event_id within ``horizon`` seconds of event time."""

    def __init__(self, context: RunContext, horizon: float):
        super().__init__()
        if horizon <= 0:
            raise ValueError(f"dedup horizon must be positive, got {horizon}")
        self._ctx = context
        self._horizon = horizon

    def expand(self, touchpoints):
        results = (
            touchpoints
            | "KeyByEventId" >> beam.Map(lambda tp: (tp["event_id"], tp)).with_output_types(Tuple[str, Any])
            | "KeepFirstVersion" >> beam.ParDo(_FirstVersionFn(self._ctx, self._horizon)).with_outputs(
                DEAD_LETTERS, main=TOUCHPOINTS
            )
        )
        return {TOUCHPOINTS: results[TOUCHPOINTS], DEAD_LETTERS: results[DEAD_LETTERS]}
