"""Streaming attribution: a person_id per touchpoint from an ``identity_map`` snapshot plus the
links carried inside the event itself.

A stream cannot run connected components over the whole graph for every event; it attributes with
what the latest batch run stitched (``identity_map``, refreshed as a side input) and the event's own
identifiers, by the same rules as the batch stage, reusing its functions:

1. the event's strongest usable identifier (:func:`.graph.strongest`: lowest priority, then
   smallest hash), skipping blocklisted values (:func:`.graph.blocklist_hashes`) and identifiers the
   map lists as quarantined -- exactly the batch ``Attribute`` step's choice;
2. known to the map: its person;
3. unknown: the event links it to its other identifiers, so the person is what the batch stage
   would decide for a component made of this event and the persons its known identifiers belong to
   (:func:`.persons.choose_person`: the oldest identified candidate, else -- for a weak identifier --
   the oldest anonymous one, else a **provisional id** :func:`.persons.derived_person_id` of the
   strongest identifier, deterministic, and the id batch gives a new person whose strongest
   identifier it is);
4. no usable identifier: no person (as in batch; counted ``<channel>.unattributed``).

The erasure list (``erasure_requests``) is honoured as in batch (:func:`.erasure.is_erased`): a
touchpoint whose strongest identifier is erased is dropped and counted ``<channel>.erased``; erased
identifiers are removed from every other touchpoint.

What the stream cannot see -- links between two events neither of which is in the map yet, degree
caps and conflicts reached since the last batch run -- the scheduled batch run reconciles
(docs/streaming.md, "The batch / stream contract").
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics

from ..parse import NAMESPACE
from .erasure import is_erased
from .graph import KnowsBlocklist, priority, strongest
from .persons import QUARANTINED, candidate, choose_person

#: How the person of a streamed touchpoint was found (counted as ``identity.stream.<how>``).
FROM_MAP, FROM_LINKS, PROVISIONAL, NONE = "map", "links", "provisional", "unattributed"


def snapshot_from_rows(rows: Iterable[tuple[str, str, str | None, str, int | None]], erased: Iterable[str] = ()) -> dict[str, Any]:
    """An identity snapshot from ``identity_map`` rows ``(id_hash, kind, person_id, status, first_seen)``:
    ``{"ids": {id_hash: (person_id or None, quarantined)}, "persons": {person_id: (identified, first_seen)},
    "loaded_at": seconds}``. Persons are summarized the way :mod:`.persons` weighs candidates."""
    ids: dict[str, tuple[str | None, bool]] = {}
    persons: dict[str, tuple[bool, int]] = {}
    for id_hash, kind, person_id, status, first_seen in rows:
        ids[id_hash] = (person_id, status == QUARANTINED)
        if person_id is None:
            continue
        identified, first = persons.get(person_id, (False, None))
        seen = first_seen if first_seen is not None else 0
        persons[person_id] = (identified or priority(kind) == 0, seen if first is None else min(first, seen))
    return {"ids": ids, "persons": persons, "erased": frozenset(erased), "loaded_at": time.time()}


EMPTY_SNAPSHOT = {"ids": {}, "persons": {}, "erased": frozenset(), "loaded_at": 0.0}


def load_snapshot(warehouse_url: str) -> dict[str, Any]:
    """The warehouse's ``identity_map`` now (an empty snapshot when the table has no rows yet)."""
    from ..warehouse import open_warehouse

    warehouse = open_warehouse(warehouse_url)
    try:
        warehouse.init(["identity_map", "erasure_requests"])
        rows = warehouse.query("SELECT id_hash, kind, person_id, status, first_seen FROM identity_map")
        erased = [h for (h,) in warehouse.query("SELECT id_hash FROM erasure_requests")]
    finally:
        warehouse.close()
    return snapshot_from_rows(((h, k, p, s, _micros(f)) for h, k, p, s, f in rows), erased)


def _micros(value) -> int | None:
    if value is None or isinstance(value, int):
        return value
    from ...schemas.rows import to_micros

    return to_micros(value)


def person_for(identifiers: list[dict], snapshot: dict[str, Any], blocked: frozenset | set = frozenset()) -> tuple[str | None, str]:
    """(person_id or None, how) for a touchpoint's identifiers (see the module doc)."""
    ids = snapshot["ids"]
    skip = {i["id_hash"] for i in identifiers if i["id_hash"] in blocked or ids.get(i["id_hash"], (None, False))[1]}
    best = strongest(identifiers, skip)
    if best is None:
        return None, NONE
    known = ids.get(best["id_hash"])
    if known is not None and known[0] is not None:
        return known[0], FROM_MAP
    persons = snapshot["persons"]
    candidates = {}
    for ident in identifiers:
        person = ids.get(ident["id_hash"], (None, False))[0]
        if ident["id_hash"] not in skip and person is not None and person not in candidates:
            identified, first_seen = persons.get(person, (False, 0))
            candidates[person] = candidate(person, identified, first_seen)
    person = choose_person((priority(best["kind"]), best["id_hash"]), sorted(candidates.values()))
    return person, FROM_LINKS if person in candidates else PROVISIONAL


class _AttributeFn(KnowsBlocklist, beam.DoFn):
    def setup(self):
        super().setup()
        self._counters: dict[str, Any] = {}

    def _count(self, name: str) -> None:
        if name not in self._counters:
            self._counters[name] = Metrics.counter(NAMESPACE, name)
        self._counters[name].inc()

    def process(self, touchpoint, snapshot):
        snapshot = snapshot or EMPTY_SNAPSHOT
        erased = snapshot.get("erased")
        if erased:
            if is_erased(touchpoint, erased):
                self._count(f"{touchpoint['channel']}.erased")
                return
            kept = [i for i in touchpoint["identifiers"] if i["id_hash"] not in erased]
            if len(kept) != len(touchpoint["identifiers"]):
                touchpoint = {**touchpoint, "identifiers": kept}
        person, how = person_for(touchpoint["identifiers"], snapshot, self._blocked)
        self._count(f"identity.stream.{how}")
        if person is None:
            self._count(f"{touchpoint['channel']}.unattributed")
        yield {**touchpoint, "person_id": person}


class IdentitySnapshots(beam.PTransform):
    """p -> a PCollection of identity snapshots for :class:`AttributeStreaming` (``AsSingleton``).

    ``refresh_seconds`` > 0: Beam's slowly-updating side input pattern -- ``PeriodicImpulse`` every
    ``refresh_seconds``, in the global window with a trigger per firing, each firing reading the
    warehouse's ``identity_map`` -- so a long-running job on Dataflow picks up every batch run's map.
    ``refresh_seconds`` = 0: one snapshot read now, at graph construction. Beam's DirectRunner
    blocks a global-window side input until its source *finishes*, so the never-ending
    PeriodicImpulse would stall it forever: local runs use 0 and pick up a new map on restart."""

    def __init__(self, warehouse_url: str, refresh_seconds: float = 0.0):
        super().__init__()
        self._url = warehouse_url
        self._refresh = refresh_seconds

    def expand(self, pbegin):
        if self._refresh <= 0:
            return pbegin | "Snapshot" >> beam.Create([load_snapshot(self._url)])
        from apache_beam.transforms import trigger, window
        from apache_beam.transforms.periodicsequence import PeriodicImpulse

        url = self._url
        return (
            pbegin
            | "Every" >> PeriodicImpulse(fire_interval=self._refresh, apply_windowing=False)
            | "GlobalWindow" >> beam.WindowInto(window.GlobalWindows(), trigger=trigger.Repeatedly(trigger.AfterCount(1)),
                                                accumulation_mode=trigger.AccumulationMode.DISCARDING)
            | "ReadIdentityMap" >> beam.Map(lambda _tick: load_snapshot(url))
        )


class AttributeStreaming(beam.PTransform):
    """Touchpoints -> the same touchpoints with ``person_id`` (see the module doc); ``snapshots``
    is the output of :class:`IdentitySnapshots`."""

    def __init__(self, snapshots, hash_key_source: str, extra_blocklist: tuple[tuple[str, str], ...] = ()):
        super().__init__()
        self._snapshots = snapshots
        self._key_source = hash_key_source
        self._extra = tuple(extra_blocklist)

    def expand(self, touchpoints):
        return touchpoints | "AttributePerson" >> beam.ParDo(
            _AttributeFn(self._key_source, self._extra), beam.pvalue.AsSingleton(self._snapshots, default_value=EMPTY_SNAPSHOT))
