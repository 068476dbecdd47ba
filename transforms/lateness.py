"""Allowed lateness, made explicit: records too far behind the watermark become ``too_late`` dead letters.

Beam's windowing drops data that arrives after its window expired without a trace; Touchline
never drops. :class:`LatenessGate` sits right after the source (before parsing, so a ``too_late``
dead letter keeps the raw message) and sends every record whose event time is older than the
watermark minus the allowed lateness to ``dead_letters`` with reason ``too_late``; everything else
passes unchanged and immediately (no buffering, no added latency).

A DoFn cannot read the watermark, so the gate *observes* it with event-time timers. Records are
spread over a few shard keys; each shard keeps a **clock** -- the latest time the watermark is
known to have passed -- and a ladder of probe timers at 1..7, 8..56, 64..448, ... precision units ahead of
it (digits 1..7 of every power of 8). When the watermark moves, the probes it passes fire, the
clock jumps to the highest one, and the probes of that level and below are re-armed from the new
clock, so the clock closes in on the watermark in a few timer rounds (one per octal digit of the
distance: 3 for 200 s, 8 for 90 days) and then follows it within one precision unit.

Guarantees: the clock never runs ahead of the watermark, so **a record within the allowed
lateness is never rejected**; a record is rejected once the shard's clock proves it is late, so
the effective lateness is the allowed lateness plus the clock's lag (at most one precision unit
once the timers have run; records of a bundle processed before the timers of a watermark jump
are still accepted). A shard's first record after a (re)start is always accepted: nothing is
known about the watermark yet. Counters: ``<channel>.dead_letter.too_late``.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from typing import Any, Tuple

import apache_beam as beam
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp

from .context import RunContext
from .errors import Redactor, dead_letter
from .identifiers import Hasher, resolve_key
from .parse import DEAD_LETTERS, NAMESPACE

RECORDS = "records"
REASON = "too_late"
MICROS = 1_000_000
DEFAULT_SHARDS = 16
_RADIX = 8    # probes at d * 8**k precision units ahead of the clock, d = 1..7
_LEVELS = 15  # 8**15 precision units of >= 1 s span the whole Beam timestamp range


def default_precision(allowed_lateness_seconds: float) -> float:
    """Clock precision in seconds: a thousandth of the allowed lateness, at least one second."""
    return max(1.0, allowed_lateness_seconds / 1000)


def shard_of(source: str, shards: int) -> int:
    return zlib.crc32(source.encode("utf-8")) % shards


def _iso(micros: int) -> str:
    try:
        return (dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=micros)).isoformat().replace("+00:00", "Z")
    except OverflowError:
        return f"{micros}us"


def _span(micros: int) -> str:
    return str(dt.timedelta(microseconds=micros))


def _event_id(payload: Any) -> str | None:
    try:
        datum = json.loads(payload)
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    event_id = datum.get("event_id") if isinstance(datum, dict) else None
    return event_id if isinstance(event_id, str) else None


class _GateFn(beam.DoFn):
    CLOCK = ReadModifyWriteStateSpec("clock", coders.VarIntCoder())  # latest time the watermark passed
    BASE = ReadModifyWriteStateSpec("base", coders.VarIntCoder())    # where the first ladder stands
    DONE = ReadModifyWriteStateSpec("done", coders.BooleanCoder())   # the watermark reached the end
    PROBE = TimerSpec("probe", TimeDomain.WATERMARK)
    END = TimerSpec("end", TimeDomain.WATERMARK)

    def __init__(self, allowed_lateness: float, precision: float, context: RunContext):
        self._lateness = int(allowed_lateness * MICROS)
        self._unit = max(1, int(precision * MICROS))
        self._ctx = context

    def setup(self):
        self._redactor = Redactor(Hasher(resolve_key(self._ctx.hash_key_source)))
        self._limit = GlobalWindow().max_timestamp().micros
        self._counters: dict[str, Any] = {}

    def _arm(self, probe, base: int, levels: int) -> None:
        for k in range(levels):
            step = self._unit * _RADIX**k
            for d in range(1, _RADIX):
                at = base + d * step
                if at > self._limit:
                    return
                probe.set(Timestamp(micros=at), dynamic_timer_tag=f"{k}.{d}")

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        clock=beam.DoFn.StateParam(CLOCK),
        base=beam.DoFn.StateParam(BASE),
        probe=beam.DoFn.TimerParam(PROBE),
        end=beam.DoFn.TimerParam(END),
    ):
        _shard, (channel, record) = element
        at = timestamp.micros
        now = clock.read()
        if now is None:
            # Nothing known about the watermark yet: accept, and stand the ladder at the lowest
            # event time seen so far (a record stamped far in the future must not blind the clock).
            lowest = base.read()
            if lowest is None:
                end.set(Timestamp(micros=self._limit))
            if lowest is None or at < lowest:
                base.write(at)
                self._arm(probe, at, _LEVELS)
            yield channel, record
            return
        if at + self._lateness >= now:
            yield channel, record
            return
        counter = self._counters.get(channel)
        if counter is None:
            counter = self._counters[channel] = Metrics.counter(NAMESPACE, f"{channel}.dead_letter.{REASON}")
        counter.inc()
        source, payload, _error = record
        yield beam.pvalue.TaggedOutput(
            DEAD_LETTERS,
            dead_letter(
                run_id=self._ctx.run_id,
                logical_date=self._ctx.logical_day,
                channel=channel,
                source=source,
                failed_step="Lateness",
                reason=REASON,
                payload=payload,
                redactor=self._redactor,
                message=f"event time {_iso(at)} is {_span(now - at)} behind the watermark ({_iso(now)}); "
                f"allowed lateness is {_span(self._lateness)}",
                event_id=_event_id(payload),
            ),
        )

    @on_timer(PROBE)
    def _observe(
        self,
        fired=beam.DoFn.TimestampParam,
        tag=beam.DoFn.DynamicTimerTagParam,
        clock=beam.DoFn.StateParam(CLOCK),
        done=beam.DoFn.StateParam(DONE),
        probe=beam.DoFn.TimerParam(PROBE),
    ):
        now = clock.read()
        at = fired.micros
        if (now is not None and at <= now) or done.read():
            return  # a rung the clock already passed, or the input has ended
        clock.write(at)
        # Probes of higher levels still stand ahead of the new clock; re-arm this level and below.
        self._arm(probe, at, int(tag.split(".")[0]) + 1)

    @on_timer(END)
    def _end(self, done=beam.DoFn.StateParam(DONE)):
        # The watermark reached the end of time (bounded input, drain): nothing more can be late
        # in a way that matters, so stop chasing it (that would take ~40 more timer rounds).
        done.write(True)


class LatenessGate(beam.PTransform):
    """``(channel, (source, payload, error))`` records stamped with event time ->
    ``{records, dead_letters}``; records older than watermark - allowed lateness are dead letters."""

    def __init__(self, allowed_lateness: float, context: RunContext, shards: int = DEFAULT_SHARDS,
                 precision: float | None = None):
        super().__init__()
        if allowed_lateness < 0:
            raise ValueError(f"allowed lateness must not be negative, got {allowed_lateness}")
        if shards < 1:
            raise ValueError(f"shards must be positive, got {shards}")
        self._lateness = allowed_lateness
        self._precision = default_precision(allowed_lateness) if precision is None else precision
        self._shards = shards
        self._ctx = context

    def expand(self, records):
        shards = self._shards
        results = (
            records
            | "ShardByMessage" >> beam.Map(lambda r: (shard_of(r[1][0], shards), r)).with_output_types(Tuple[int, Any])
            | "CheckLateness" >> beam.ParDo(_GateFn(self._lateness, self._precision, self._ctx)).with_outputs(
                DEAD_LETTERS, main=RECORDS
            )
        )
        return {RECORDS: results[RECORDS], DEAD_LETTERS: results[DEAD_LETTERS]}
