"""Put a person_id on every touchpoint, and re-attribute earlier ones whose person changed.

A touchpoint belongs to the person of its strongest identifier that is not quarantined (lowest
priority, then smallest hash: a customer_id before an e-mail before a device before a cookie).
Its ``role`` stays the one it was made in (set by the channel when parsed), so a person who is a
customer and an employee has touchpoints in both roles.

**Unattributable touchpoints** -- every identifier quarantined or blocklisted, or none at all (an
anonymous app_open on a kiosk or on a device with tracking off) -- keep ``person_id`` null and are
counted in ``touchline/<channel>.unattributed``; they stay in the touchpoints table (nothing is
dropped) and are re-attributed by a later run if one of their identifiers is released.

**Late links.** The stored touchpoints of the last ``lookback_days`` days (``history``; when the
caller reads part of them only where an identifier moved -- the others cannot change, see
``touchline.transforms.warehouse.state``) go through the same attribution; those whose person
changed -- an anonymous cookie that logged in, two persons merged, an identifier quarantined
since -- are re-emitted with the new person (the
touchpoints table merges by event_id, so the stored row is replaced), counted in
``touchline/identity.reattributed``. Older touchpoints are deliberately left as they are; their
old person ids resolve through ``person_merges``. Each re-attributed touchpoint adds a recompute
scope (person, event_date) for its old and its new person, so journeys and scores of both are
recomputed from that day. A stored touchpoint that this run has again (a replay of the same input,
e.g. after a stream attributed it to a provisional person id) is written with this run's person;
if the stored version belonged to another person, that person gets the scope too, so rows derived
under the old id do not linger.

Batches: every touchpoint table is keyed by the bucket of its rows' attribution keys (the strongest
usable identifier; an unattributable row by its event_id, so it meets no person) and joined, per
bucket, with that bucket's ``(id_hash, person_id)`` pairs: one vectorized lookup per table. Stored
touchpoints carry flags: ``_in_run`` (this run has the event: see :class:`MarkReplayed`),
``_erased`` (see :mod:`.erasure`) and, set here, whether they are inside the lookback.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from .. import batches
from ..packing import CoGroupByBucket, KeyTable, Shuffle, unpack
from ..parse import NAMESPACE
from .broadcast import LastCache, SetCache
from .erasure import ERASED
from .graph import strongest

UNATTRIBUTED = "unattributed"
CURRENT = "current"
HISTORY = "history"
STORED = "stored"
SCOPES = "scopes"
#: stored touchpoints attribution cannot change (:class:`SplitMovable`)
UNMOVED = "unmoved"
#: stored touchpoints whose events this run does not have, set apart by the read (:class:`MarkReplayed`)
UNREPLAYED = "unreplayed"
#: helper columns (dropped before a table leaves the stage)
KEY, IN_RUN, ATTRIBUTE = "_key", "_in_run", "_attribute"
HELPERS = (KEY, IN_RUN, ERASED, ATTRIBUTE)


def attribution_key(identifiers: list[dict], excluded: frozenset | set) -> str | None:
    """The id_hash whose person a touchpoint belongs to: its strongest usable identifier (None: unattributable)."""
    best = strongest(identifiers, excluded)
    return None if best is None else best["id_hash"]


class _MarkReplayed(beam.DoFn):
    """(bucket of event_id, {run: [event ids of this run], stored: [stored touchpoint tables]}) ->
    (bucket, packed stored touchpoints with ``_in_run``)."""

    def __init__(self, shuffle: Shuffle):
        self._shuffle = shuffle

    def process(self, element):
        key, groups = element
        parts = [table for name, tables in groups.items() if name != "run" for table in tables]
        if not parts:
            return
        stored = batches.concat(parts)
        run = pa.array([e for ids in groups["run"] for e in ids], pa.string())
        yield key, self._shuffle.pack(stored.append_column(IN_RUN, pc.is_in(stored.column("event_id"), value_set=run)))


class _NotReplayed(beam.DoFn):
    """A table of stored touchpoints whose events this run does not have -> (bucket, packed rows
    with ``_in_run`` false). The bucket is the one of its first event_id: later steps key the
    rows again, nothing groups on it."""

    def __init__(self, shuffle: Shuffle):
        self._shuffle = shuffle

    def process(self, table):
        if table.num_rows:
            key = batches.bucket(table.column("event_id")[0].as_py(), self._shuffle.buckets)
            yield key, self._shuffle.pack(table.append_column(IN_RUN, pa.array(np.zeros(table.num_rows, dtype=bool))))


class MarkReplayed(beam.PTransform):
    """{run: (bucket of event_id, packed event id lists of this run), stored: stored touchpoint
    tables, [unreplayed: stored touchpoint tables of events this run does not have], [any other
    name: more stored touchpoint tables]} -> (bucket, packed stored touchpoints with ``_in_run``:
    this run has the event too). Each stored input is keyed where it is read (a flatten of raw
    tables from two reads would be held whole by the local runner).

    ``unreplayed`` is what a read that knows the run's event ids already set apart (an event the
    warehouse's copy of the run keys does not hold cannot be this run's:
    ``touchline.transforms.warehouse.state``): those rows get ``_in_run`` false where they are
    read, without the join -- in a daily run that is nearly every stored row, and the join then
    holds only the replays."""

    def __init__(self, shuffle: Shuffle):
        super().__init__()
        self._shuffle = shuffle

    def expand(self, inputs):
        stored = {name: tables | f"KeyByEventId{'' if name == 'stored' else name.title()}" >> beam.ParDo(
                  KeyTable("event_id", self._shuffle)) for name, tables in inputs.items() if name not in ("run", UNREPLAYED)}
        marked = (
            {"run": inputs["run"], **stored}
            | "JoinRunEventIds" >> CoGroupByBucket()
            | "Mark" >> beam.ParDo(_MarkReplayed(self._shuffle))
        )
        if UNREPLAYED not in inputs:
            return marked
        unreplayed = inputs[UNREPLAYED] | "MarkUnreplayed" >> beam.ParDo(_NotReplayed(self._shuffle))
        return (marked, unreplayed) | "AllMarked" >> beam.Flatten()


def holding(table: pa.Table, ids: pa.Array) -> pa.Array:
    """Per row of a touchpoint table: whether one of its identifiers' ``id_hash`` is in ``ids``."""
    lists = table.column("identifiers").combine_chunks()
    hits = pc.is_in(pc.struct_field(pc.list_flatten(lists), "id_hash"), value_set=ids)
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[pc.filter(pc.list_parent_indices(lists), hits).to_numpy()] = True
    return pa.array(mask)


class SplitMovable(beam.DoFn):
    """(bucket, packed stored touchpoints with ``_in_run``), side input: every hash of an identifier
    that moved this run (one list) -> those whose attribution can change: this run has the event
    again, or one of its identifiers moved (main output, for :class:`AttributeTouchpoints`); the
    others, as stored, tagged :data:`UNMOVED`.

    A stored touchpoint belongs to the person of its strongest usable identifier. That is the
    stored person unless one of its identifiers changed person or status (``moved``: every
    identifier of every touchpoint read is in the graph this run decides on, see
    ``touchline.transforms.warehouse.state``), so attribution would give the others back unchanged:
    they skip its keying and shuffle (most of the stored rows of a daily run)."""

    def __init__(self, shuffle: Shuffle):
        self._shuffle = shuffle

    def setup(self):
        self._ids = LastCache(lambda moved: pa.array(moved, pa.string()), pa.array([], pa.string()))

    def process(self, element, moved):
        key, blob = element
        table = unpack(blob)
        movable = pc.or_(table.column(IN_RUN), holding(table, self._ids(moved)))
        n = pc.sum(movable.cast(pa.int64())).as_py() or 0
        if n:
            yield key, blob if n == table.num_rows else self._shuffle.pack(table.filter(movable))
        if n < table.num_rows:
            kept = table.filter(pc.invert(movable)) if n else table
            yield beam.pvalue.TaggedOutput(UNMOVED, (key, self._shuffle.pack(_drop_helpers(kept))))


class _Key(beam.DoFn):
    """(bucket, packed touchpoints) -> (bucket of the attribution key, packed rows with ``_key``).

    ``origin`` is ``current`` (this run's; unattributable ones are counted per channel) or
    ``history`` (stored touchpoints: with ``attribute``, those from ``history_from`` on (None: all)
    that are not erased take part; the others keep a null key and ``_attribute`` false)."""

    def __init__(self, origin: str, shuffle: Shuffle, history_from: int | None = None, attribute: bool = True):
        self._origin = origin
        self._shuffle = shuffle
        self._from = history_from
        self._attribute = attribute

    def setup(self):
        self._excluded = SetCache()
        self._unattributed = {}

    def process(self, element, excluded):
        with batches.bulk():
            yield from self._work(element, excluded)

    def _work(self, element, excluded):
        _bucket, blob = element
        table = unpack(blob)
        skip = self._excluded(excluded)
        identifiers = table.column("identifiers").to_pylist()
        if self._origin == CURRENT:
            take = [True] * table.num_rows
        else:
            days = pc.cast(table.column("event_date"), pa.int32()).to_pylist()
            erased = table.column(ERASED).to_pylist() if ERASED in table.column_names else [False] * table.num_rows
            start = self._from if self._from is not None else -(1 << 40)
            take = [self._attribute and day >= start and not gone for day, gone in zip(days, erased)]
        keys = [attribution_key(ids or [], skip) if t else None for ids, t in zip(identifiers, take)]
        if self._origin == CURRENT:
            self._count_unattributed(table, keys)
        else:
            table = table.append_column(ATTRIBUTE, pa.array(take, pa.bool_()))
        event_ids = table.column("event_id").to_pylist()
        table = table.append_column(KEY, pa.array(keys, pa.string()))
        yield from self._shuffle.split(table, (k if k is not None else e for k, e in zip(keys, event_ids)))

    def _count_unattributed(self, table, keys):
        missing = [i for i, k in enumerate(keys) if k is None]
        if not missing:
            return
        channels = table.column("channel").take(pa.array(missing)).to_pylist()
        counts: dict[str, int] = {}
        for channel in channels:
            counts[channel] = counts.get(channel, 0) + 1
        for channel, n in counts.items():
            if channel not in self._unattributed:
                self._unattributed[channel] = Metrics.counter(NAMESPACE, f"{channel}.{UNATTRIBUTED}")
            self._unattributed[channel].inc(n)


def _drop_helpers(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in HELPERS if c in table.column_names])


class _Attribute(batches.BatchDoFn):
    """(bucket, {person, touchpoints, [history]}) -> (bucket, packed touchpoints with their person:
    this run's and the re-attributed stored ones); tagged: ``stored`` (stored touchpoints neither
    moved nor replayed by this run, as stored) and ``scopes`` (lists of (person_id, day))."""

    def __init__(self, shuffle: Shuffle):
        self._shuffle = shuffle

    def setup(self):
        self._moved = Metrics.counter(NAMESPACE, "identity.reattributed")

    def _work(self, element):
        key, groups = element
        pairs = [pair for records in groups["person"] for pair in records]
        lookup = batches.mapping([h for h, _ in pairs], [p for _, p in pairs])
        out = []
        if groups["touchpoints"]:
            current = batches.concat(groups["touchpoints"])
            out.append(_drop_helpers(batches.with_column(current, "person_id", lookup(current.column(KEY)))))
        scopes = []
        if groups.get(HISTORY):
            history = batches.concat(groups[HISTORY])
            new = lookup(history.column(KEY))
            old = history.column("person_id")
            moved = pc.and_(history.column(ATTRIBUTE), pc.not_equal(pc.fill_null(new, ""), pc.fill_null(old, "")))
            replayed = history.column(IN_RUN)
            days = pc.cast(history.column("event_date"), pa.int32())
            # moved but replayed by this run: this run's version is written; the old person is rescoped
            rescoped = pc.and_(moved, replayed)
            scopes.extend((p, d) for p, d in zip(old.filter(rescoped).to_pylist(), days.filter(rescoped).to_pylist()) if p is not None)
            reattributed = pc.and_(moved, pc.invert(replayed))
            n = pc.sum(reattributed.cast(pa.int64())).as_py() or 0
            if n:
                self._moved.inc(n)
                rows = batches.with_column(history.filter(reattributed), "person_id", new.filter(reattributed))
                out.append(_drop_helpers(rows))
                for before, after, day in zip(old.filter(reattributed).to_pylist(), new.filter(reattributed).to_pylist(),
                                              days.filter(reattributed).to_pylist()):
                    if before is not None:
                        scopes.append((before, day))
                    if after is not None:
                        scopes.append((after, day))
            kept = history.filter(pc.invert(pc.or_(moved, replayed)))
            if kept.num_rows:
                yield beam.pvalue.TaggedOutput(STORED, (key, self._shuffle.pack(_drop_helpers(kept))))
        if out:
            yield key, self._shuffle.pack(batches.concat(out))
        if scopes:
            yield beam.pvalue.TaggedOutput(SCOPES, scopes)


class AttributeTouchpoints(beam.PTransform):
    """{touchpoints: (bucket, packed), [history: (bucket, packed) with ``_in_run`` and ``_erased``],
    persons: (bucket, packed (id_hash, person_id) pairs), excluded: id_hashes}
    -> {touchpoints: (bucket, packed) this run's (with person_id) + re-attributed history,
        stored: (bucket, packed) the other stored touchpoints, scopes: lists of (person_id, day)}.
    Without ``history`` (a first run) the stored touchpoints' steps are left out."""

    def __init__(self, shuffle: Shuffle, history_from: int | None = None, attribute: bool = True):
        super().__init__()
        self._shuffle = shuffle
        self._from = history_from
        self._attribute = attribute

    def expand(self, inputs):
        excluded = beam.pvalue.AsList(inputs["excluded"])
        joined = {
            "person": inputs["persons"],
            "touchpoints": inputs["touchpoints"] | "KeyCurrent" >> beam.ParDo(_Key(CURRENT, self._shuffle), excluded),
        }
        if "history" in inputs:
            joined[HISTORY] = inputs["history"] | "KeyHistory" >> beam.ParDo(
                _Key(HISTORY, self._shuffle, self._from, self._attribute), excluded)
        attributed = (
            joined
            | "JoinPersons" >> CoGroupByBucket()
            | "Attribute" >> beam.ParDo(_Attribute(self._shuffle)).with_outputs(STORED, SCOPES, main=CURRENT)
        )
        return {"touchpoints": attributed[CURRENT], STORED: attributed[STORED], SCOPES: attributed[SCOPES]}

