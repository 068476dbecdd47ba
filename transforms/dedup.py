"""Deduplicate touchpoints by event_id (sources deliver at least once).

Touchpoint batches are grouped by the bucket of their event_id (every copy of an event lands in
the same bucket) and each bucket is deduplicated as one table (:func:`deduplicate`). Exact
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
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from .. import schemas
from . import batches
from .context import RunContext
from .errors import Redactor, dead_letter
from .identifiers import Hasher, resolve_key
from .packing import GroupBuckets
from .parse import DEAD_LETTERS, NAMESPACE, TOUCHPOINTS

CONFLICT = "conflicting_duplicate"
SPEC = schemas.table_schema("touchpoints")


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


def versions(copies: list[dict]) -> list[int]:
    """Indices of the versions of one event_id's copies, the winner first: one copy per content
    digest (the one read at the smallest source), ordered by digest. A single copy is its own
    version (its digest is never computed)."""
    if len(copies) == 1:
        return [0]
    kept: dict[str, int] = {}
    for i, copy in enumerate(copies):
        digest = content_digest(copy)
        best = kept.get(digest)
        if best is None or copy["source"] < copies[best]["source"]:
            kept[digest] = i
    return [kept[d] for d in sorted(kept)]


def deduplicate(table: pa.Table) -> tuple[pa.Table, list[tuple[dict, dict]], dict[str, int]]:
    """One bucket's touchpoints -> (one row per event_id, [(losing version, winner)], {source:
    exact copies dropped}). Relational and vectorized where it can be: event ids seen once (almost
    all) pass as they are; only the rows of repeated ids become dicts, for their digests."""
    ids = table.column("event_id")
    counts = pc.value_counts(ids)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return table, [], {}
    mask = pc.is_in(ids, value_set=repeated)
    singles = table.filter(pc.invert(mask))
    copies_table = table.filter(mask)
    rows = batches.datum_rows(copies_table, SPEC)
    by_event: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_event.setdefault(row["event_id"], []).append(i)
    keep, losers, duplicates = [], [], {}
    for indices in by_event.values():
        copies = [rows[i] for i in indices]
        order = versions(copies)
        winner = copies[order[0]]
        keep.append(indices[order[0]])
        if len(copies) > len(order):
            name = accounting_name(winner)
            duplicates[name] = duplicates.get(name, 0) + len(copies) - len(order)
        losers.extend((copies[i], winner) for i in order[1:])
    winners = copies_table.take(pa.array(sorted(keep)))
    return pa.concat_tables([singles, winners]), losers, duplicates


class _Deduplicate(batches.BatchDoFn):
    """(bucket, [touchpoint tables]) -> (bucket, one touchpoint per event_id); conflicting versions
    as dead letters (one list per bucket)."""

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

    def _work(self, element):
        key, tables = element
        unique, losers, duplicates = deduplicate(batches.concat(tables))
        for name, n in duplicates.items():
            self._count("duplicates", name, n)
        yield key, self._ctx.shuffle.pack(unique)
        if losers:
            dead = []
            for loser, winner in losers:
                self._count("dead_letter.conflicting_duplicate", accounting_name(loser), 1)
                dead.append(conflict_dead_letter(self._ctx, self._redactor, loser, f"kept the version read at {winner['source']}"))
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, (f"dedup-{key:05d}", self._ctx.shuffle.pack(dead)))


class DeduplicateTouchpoints(beam.PTransform):
    """Touchpoint batches ``(bucket of event_id, packed table)`` (any sources) -> ``{touchpoints:
    (bucket, packed table) with one row per event_id, dead_letters: (file key, packed rows)}``. Every copy of an
    event_id is in the same bucket, so one shuffle of batches decides every event."""

    def __init__(self, context: RunContext):
        super().__init__()
        self._ctx = context

    def expand(self, keyed):
        results = (
            keyed
            | "GroupByBucket" >> GroupBuckets()
            | "KeepOne" >> beam.ParDo(_Deduplicate(self._ctx)).with_outputs(DEAD_LETTERS, main=TOUCHPOINTS)
        )
        return {TOUCHPOINTS: results[TOUCHPOINTS], DEAD_LETTERS: results[DEAD_LETTERS]}
