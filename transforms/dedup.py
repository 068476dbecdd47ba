"""Deduplicate touchpoints by event_id (sources deliver at least once).

Copies of an event are combined with a lifted combiner (partial dedup before the shuffle). Exact
copies are counted (``touchline/<source>.duplicates``, the source being the touchpoint's
``origin``: its channel, or the adapter it was read through) and dropped; copies that share an event_id
but differ in content are a conflict: the version with the smallest content digest wins (so the
outcome does not depend on file order or sharding) and every other version goes to the dead
letters with reason ``conflicting_duplicate``. Per source (channel or adapter):
``parsed = unique touchpoints + duplicates + conflicting_duplicate dead letters``.
"""

from __future__ import annotations

import hashlib

import apache_beam as beam
from apache_beam.metrics import Metrics

from .context import RunContext
from .errors import Redactor, dead_letter
from .identifiers import Hasher, resolve_key
from .labels import camel
from .packing import pack, unpack
from .parse import DEAD_LETTERS, NAMESPACE, TOUCHPOINTS

CONFLICT = "conflicting_duplicate"


def accounting_name(touchpoint: dict) -> str:
    """The source a touchpoint is counted under: the adapter it was read through, else its channel."""
    return touchpoint.get("origin") or touchpoint["channel"]


def content_digest(touchpoint: dict) -> str:
    """Digest of everything but lineage (``source``, ``person_id``): equal for exact copies."""
    parts = [(k, v) for k, v in touchpoint.items() if k not in ("source", "person_id")]
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def conflict_dead_letter(ctx: RunContext, redactor: Redactor, loser: dict, kept: str) -> dict:
    """The dead letter of a version that lost to another version of the same event_id."""
    return dead_letter(
        run_id=ctx.run_id,
        logical_date=ctx.logical_day,
        channel=accounting_name(loser),
        source=loser["source"],
        failed_step="Dedup",
        reason=CONFLICT,
        payload=loser,
        redactor=redactor,
        message=f"event_id {loser['event_id']} was also delivered with different content; {kept}",
        event_id=loser["event_id"],
    )


def _put(versions: dict, digest: str, version: tuple[str, bytes]) -> None:
    """Keep one (source, copy) per content digest: the copy read at the smallest source."""
    kept = versions.get(digest)
    if kept is None or version[0] < kept[0]:
        versions[digest] = version


def _keep(versions: dict, blob: bytes) -> None:
    """Add a packed copy (its digest and source need its content: unpacked here)."""
    touchpoint = unpack(blob)
    _put(versions, content_digest(touchpoint), (touchpoint["source"], blob))


class _Versions(beam.CombineFn):
    """Accumulator: (copies seen, the only copy so far, {digest: (source, copy) with the smallest source}).

    Copies are packed touchpoints (:mod:`.packing`): they cross the shuffle as bytes and are
    unpacked only when their content is needed. Almost every event_id has one copy: its digest is
    never needed, so it is computed only once a second copy arrives (then for every copy). Until
    then the dict is None and the copy waits in the middle slot; afterwards the middle slot is None."""

    def create_accumulator(self):
        return (0, None, None)

    def add_input(self, acc, blob):
        count, single, versions = acc
        if count == 0:
            return (1, blob, None)
        if versions is None:
            versions = {}
            _keep(versions, single)
        _keep(versions, blob)
        return (count + 1, None, versions)

    def merge_accumulators(self, accumulators):
        total, single, merged = 0, None, None
        for count, one, versions in accumulators:
            if not count:
                continue
            if total == 0 and versions is None:
                total, single = count, one
                continue
            if merged is None:
                merged = {}
                if single is not None:
                    _keep(merged, single)
                    single = None
            if versions is None:
                _keep(merged, one)
            else:
                for digest, version in versions.items():
                    _put(merged, digest, version)
            total += count
        return (total, single, merged)

    def extract_output(self, acc):
        """(copies seen, packed versions ordered by content digest: the first one wins)."""
        count, single, versions = acc
        if versions is None:
            return count, [single]
        return count, [versions[d][1] for d in sorted(versions)]


class _Emit(beam.DoFn):
    def __init__(self, context: RunContext):
        self._ctx = context

    def setup(self):
        self._redactor = Redactor(Hasher(resolve_key(self._ctx.hash_key_source)))
        self._counters = {}

    def _count(self, name, channel, n):
        key = (name, channel)
        if key not in self._counters:
            self._counters[key] = Metrics.counter(NAMESPACE, f"{channel}.{name}")
        self._counters[key].inc(n)

    def process(self, element):
        _event_id, (count, packed) = element
        versions = [unpack(blob) for blob in packed]
        winner, losers = versions[0], versions[1:]
        if count > len(versions):
            self._count("duplicates", accounting_name(winner), count - len(versions))
        yield winner
        for loser in losers:
            self._count("dead_letter.conflicting_duplicate", accounting_name(loser), 1)
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTERS, conflict_dead_letter(self._ctx, self._redactor, loser, f"kept the version read at {winner['source']}")
            )


class DeduplicateTouchpoints(beam.PTransform):
    """Touchpoints (any channels) -> ``{touchpoints, dead_letters}`` with one row per event_id.

    The input is one PCollection, or a dict of them (e.g. one per channel): each is then keyed and
    packed where it is made, so their flatten carries bytes instead of touchpoints."""

    def __init__(self, context: RunContext):
        super().__init__()
        self._ctx = context

    def expand(self, touchpoints):
        # packed: copies cross the flatten and the shuffle as bytes, unpacked once in KeepOne (see .packing)
        if isinstance(touchpoints, dict):
            keyed = [
                pcoll | f"KeyByEventId{camel(name)}" >> beam.Map(_keyed)
                for name, pcoll in touchpoints.items()
            ] | "FlattenKeyed" >> beam.Flatten()
        else:
            keyed = touchpoints | "KeyByEventId" >> beam.Map(_keyed)
        results = (
            keyed
            | "CombineCopies" >> beam.CombinePerKey(_Versions())
            | "KeepOne" >> beam.ParDo(_Emit(self._ctx)).with_outputs(DEAD_LETTERS, main=TOUCHPOINTS)
        )
        return {TOUCHPOINTS: results[TOUCHPOINTS], DEAD_LETTERS: results[DEAD_LETTERS]}


def _keyed(touchpoint: dict) -> tuple[str, bytes]:
    return touchpoint["event_id"], pack(touchpoint)
