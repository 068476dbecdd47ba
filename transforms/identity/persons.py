"""Stable person ids for components, ``person_merges`` and the ``identity_map`` rows.

A component's person id is decided from the component alone plus the previous ``identity_map``:

1. The previous persons whose *home* is this component are the candidates. A previous person's
   home is the component holding its strongest previous identifier (so one old id never lands in
   two components after a split).
2. If a candidate was *identified* (had a customer/employee/partner id), the oldest identified
   candidate survives (earliest first_seen of its identifiers, then the id): a customer keeps
   their id when an older anonymous cookie turns out to be theirs.
3. Otherwise, if the component now holds a unique id, it gets the id derived from its strongest
   identifier (anonymous candidates merge into it); else the oldest anonymous candidate survives.
4. With no candidate, the id is derived: ``p_`` + 20 hex of a hash of the component's strongest
   identifier (lowest priority, then smallest hash). Re-runs and unrelated additions change nothing.

Every other candidate is merged away: a ``person_merges`` row old -> new (earlier rows pointing at
the merged-away id are repointed, so one lookup resolves any old id) and a recompute scope from
1970-01-01 for the old id, so journeys and scores derived under it disappear. A previous person
left without any linked identifier (all quarantined) also gets that scope.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics

from ... import schemas
from .. import batches
from ..context import RunContext
from ..packing import CoGroupByBucket, GroupBuckets, KeyTable, Shuffle, unpack
from ..parse import NAMESPACE
from .conflicts import by_label
from .graph import priority

MERGES_SPEC = schemas.table_schema("person_merges")

MERGES = "merges"
ROWS = "rows"
MOVED = "moved"
VANISHED = "vanished"
LINKED = "linked"
QUARANTINED = "quarantined"


def derived_person_id(id_hash: str) -> str:
    return "p_" + hashlib.blake2b(id_hash.encode(), digest_size=10, person=b"touchline-person").hexdigest()


def candidate(person_id: str, identified: bool, first_seen: int) -> tuple[str, bool, int]:
    """A previous person whose home is a component: (person_id, identified, first_seen)."""
    return (person_id, identified, first_seen)


def home_of(previous: Iterable[tuple]) -> tuple:
    """A previous person's identifiers ``(home (priority, hash, label) or None, kind, first_seen)``
    -> ``(home, identified, first_seen)``: the home is the label of its strongest linked identifier
    (None when none is linked any more: the person vanished)."""
    best, identified, first = None, False, None
    for home, kind, seen in previous:
        if home is not None and (best is None or home < best):
            best = home
        identified = identified or priority(kind) == 0
        if seen is not None and (first is None or seen < first):
            first = seen
    return (best, identified, first)


def choose_person(strongest: tuple[int, str], candidates: list[tuple[str, bool, int]]) -> str:
    """The person id of a component (see the module doc); candidates are (person_id, identified, first_seen)."""
    identified = [c for c in candidates if c[1]]
    if identified:
        return min(identified, key=lambda c: (c[2], c[0]))[0]
    if candidates and strongest[0] != 0:
        return min(candidates, key=lambda c: (c[2], c[0]))[0]
    return derived_person_id(strongest[1])


def moved(row: dict, previous: dict | None) -> bool:
    """The identifier's person or status is not the stored one: a stored touchpoint it is the
    attribution key of (or could become the key of) may belong to another person now. A new
    identifier (nothing stored) is in no stored touchpoint (see ``.attribute``)."""
    return previous is not None and (row["person_id"] != previous.get("person_id") or row["status"] != previous.get("status"))


def decide(members: list[tuple], candidates: list[tuple], ctx: RunContext) -> tuple[str | None, list, list, list, list]:
    """One component: members ``(id_hash, label, kind, verdict)`` and the candidates whose home it
    is -> ``(person_id, merges [(old, person_id)], persons [(id_hash, person_id)], changed
    identity_map rows, hashes of the members that moved)``; ``person_id`` None for a component
    without members."""
    strongest = min(((priority(kind), id_hash) for id_hash, _label, kind, _ in members), default=None)
    if strongest is None:
        return None, [], [], [], []
    candidates = sorted(candidates)
    person = choose_person(strongest, candidates)
    merges = [(old, person) for old, _identified, _first in candidates if old != person]
    persons, rows, gone = [], [], []
    for id_hash, _label, _kind, verdict in members:
        persons.append((id_hash, person))
        row = map_row(id_hash, verdict, person, ctx)
        if changed(row, verdict["previous"]):
            rows.append(row)
            if moved(row, verdict["previous"]):
                gone.append(id_hash)
    return person, merges, persons, rows, gone


class _Decide(beam.DoFn):
    """(bucket of label, {members, [candidates]}) -> persons ``(id_hash, person_id)`` keyed by the
    bucket of the identifier; tagged: changed identity_map rows, merges ``(old, new)`` and the
    hashes of identifiers that :func:`moved`."""

    def __init__(self, context: RunContext):
        self._ctx = context

    def setup(self):
        self._persons = Metrics.counter(NAMESPACE, "identity.persons")
        self._merged = Metrics.counter(NAMESPACE, "identity.merged_persons")

    def process(self, element):
        key, groups = element
        components = by_label(groups["members"])
        candidates: dict[str, list] = {}
        for records in groups.get("candidates", ()):
            for label, cand in records:
                candidates.setdefault(label, []).append(cand)
        persons, rows, merges, gone = [], [], [], []
        decided = 0
        for label, members in components.items():
            person, merged, assigned, changed_rows, moved_ids = decide(members, candidates.get(label, []), self._ctx)
            if person is None:
                continue
            decided += 1
            persons.extend(assigned)
            rows.extend(changed_rows)
            merges.extend(merged)
            gone.extend(moved_ids)
        if decided:
            self._persons.inc(decided)
        if merges:
            self._merged.inc(len(merges))
            yield beam.pvalue.TaggedOutput(MERGES, (key, merges))
        yield from self._ctx.shuffle.keyed((h, (h, person)) for h, person in persons)
        if rows:
            yield beam.pvalue.TaggedOutput(ROWS, (f"persons-{key:05d}", self._ctx.shuffle.pack(rows)))
        if gone:
            yield beam.pvalue.TaggedOutput(MOVED, gone)


def map_row(id_hash: str, verdict: dict, person_id: str | None, ctx: RunContext) -> dict:
    return {
        "id_hash": id_hash,
        "kind": verdict["kind"],
        "person_id": person_id,
        "status": QUARANTINED if verdict["reason"] else LINKED,
        "first_seen": verdict["first_seen"],
        "last_seen": verdict["last_seen"],
        "degree": verdict["degree"],
        "run_id": ctx.run_id,
        "updated_on": ctx.logical_day,
    }


_COMPARED = ("kind", "person_id", "status", "first_seen", "last_seen", "degree")


def changed(row: dict, previous: dict | None) -> bool:
    return previous is None or any(row[c] != previous.get(c) for c in _COMPARED)


def _previous_of_linked(lists, shuffle: Shuffle):
    """Linked identifiers that belonged to a person before -> (that person, (home key, kind,
    first_seen)), keyed by the bucket of the person."""
    out = []
    for id_hash, label, kind, verdict in lists:
        previous = verdict["previous"]
        if previous and previous["person_id"]:
            out.append((previous["person_id"], (previous["person_id"], ((priority(kind), id_hash, label), kind, previous["first_seen"]))))
    yield from shuffle.keyed(out)


def _previous_of_quarantined(verdicts, shuffle: Shuffle):
    """Quarantined identifiers that belonged to a person before: they count for the person, but are no home."""
    out = []
    for _id_hash, verdict in verdicts:
        previous = verdict["previous"]
        if previous and previous["person_id"]:
            out.append((previous["person_id"], (previous["person_id"], (None, verdict["kind"], previous["first_seen"]))))
    yield from shuffle.keyed(out)


class _Homes(beam.DoFn):
    """(bucket of person, [(person, home record)]) -> candidates ``(label, candidate)`` keyed by the
    bucket of the label; vanished persons (no linked identifier left) tagged."""

    def __init__(self, shuffle: Shuffle):
        self._shuffle = shuffle

    def process(self, element):
        _key, lists = element
        previous: dict[str, list] = {}
        for records in lists:
            for person, record in records:
                previous.setdefault(person, []).append(record)
        out, vanished = [], []
        for person, records in previous.items():
            home, identified, first = home_of(records)
            if home is None:
                vanished.append(person)
            else:
                out.append((home[2], (home[2], candidate(person, identified, first))))
        if vanished:
            yield beam.pvalue.TaggedOutput(VANISHED, vanished)
        yield from self._shuffle.keyed(out)


def _quarantined_rows(element, ctx: RunContext):
    """(bucket, quarantined verdicts) -> (file key, packed changed identity_map rows); tagged: the
    hashes of those that :func:`moved` (quarantined now, linked before)."""
    key, verdicts = element
    rows, gone = [], []
    for id_hash, verdict in verdicts:
        row = map_row(id_hash, verdict, None, ctx)
        if changed(row, verdict["previous"]):
            rows.append(row)
            if moved(row, verdict["previous"]):
                gone.append(id_hash)
    if rows:
        yield f"quarantined-{key:05d}", ctx.shuffle.pack(rows)
    if gone:
        yield beam.pvalue.TaggedOutput(MOVED, gone)


def _quarantined_packed(element, ctx: RunContext):
    yield from _quarantined_rows((element[0], unpack(element[1])), ctx)


def _repoint(element, ctx: RunContext):
    """merged-away id, {now: [survivor], before: [earlier rows pointing at it]} -> person_merges rows."""
    old, grouped = element
    now = list(grouped["now"])
    if not now:
        return
    survivor = now[0]
    yield {"old_person_id": old, "new_person_id": survivor, "merged_into": survivor, "run_id": ctx.run_id,
           "logical_date": ctx.logical_day}
    for row in grouped["before"]:
        if row["old_person_id"] != survivor:
            yield {**row, "new_person_id": survivor}


class _Repoint(beam.DoFn):
    """(bucket of person, {now: merges (old, new), before: stored person_merges tables}) -> rows."""

    def __init__(self, context: RunContext):
        self._ctx = context

    def process(self, element):
        key, groups = element
        now: dict[str, list] = {}
        for records in groups["now"]:
            for old, new in records:
                now.setdefault(old, []).append(new)
        before: dict[str, list] = {}
        for table in groups.get("before", ()):
            for row in batches.datum_rows(table, MERGES_SPEC):
                before.setdefault(row["new_person_id"], []).append(row)
        rows = [row for old, survivors in now.items()
                for row in _repoint((old, {"now": survivors, "before": before.get(old, [])}), self._ctx)]
        if rows:
            yield f"merges-{key:05d}", rows


class AssignPersons(beam.PTransform):
    """{linked: (bucket of label, packed [(id_hash, label, kind, verdict)]), quarantined: (bucket,
    packed [(id_hash, verdict)]), [identity_map: present when a map is stored], [person_merges:
    stored row tables]}
    -> {persons: (bucket of id_hash, packed [(id_hash, person_id)]), identity_map: (file key, packed changed
        rows), person_merges: (file key, new and repointed rows), scopes: lists of (person_id, 0) of
        merged-away/vanished persons, moved: lists of the hashes of identifiers whose person or
        status changed}."""

    def __init__(self, context: RunContext, stored_map: bool = True):
        super().__init__()
        self._ctx = context
        self._stored_map = stored_map

    def expand(self, inputs):
        ctx = self._ctx
        linked, quarantined = inputs["linked"], inputs["quarantined"]
        decide_inputs = {"members": linked}
        gone = []
        if self._stored_map:  # previous persons exist only when a map is stored
            previous_linked = linked | "PreviousLinked" >> beam.FlatMap(lambda kv: _previous_of_linked(unpack(kv[1]), ctx.shuffle))
            previous_quarantined = quarantined | "PreviousQuarantined" >> beam.FlatMap(
                lambda kv: _previous_of_quarantined(unpack(kv[1]), ctx.shuffle))
            homes = (
                (previous_linked, previous_quarantined)
                | "PreviousPersons" >> beam.Flatten()
                | "GroupPreviousPersons" >> GroupBuckets()
                | "HomeOfPerson" >> beam.ParDo(_Homes(ctx.shuffle)).with_outputs(VANISHED, main="candidates")
            )
            decide_inputs["candidates"] = homes["candidates"]
            gone.append(homes[VANISHED])
        decided = (
            decide_inputs
            | "JoinCandidates" >> CoGroupByBucket()
            | "Decide" >> beam.ParDo(_Decide(ctx)).with_outputs(MERGES, ROWS, MOVED, main="persons")
        )
        quarantine_rows = quarantined | "QuarantinedRows" >> beam.FlatMap(_quarantined_packed, ctx).with_outputs(MOVED, main=ROWS)
        merges = decided[MERGES]
        if "person_merges" in inputs:
            rows = (
                {
                    "now": merges | "KeyMerges" >> beam.FlatMap(
                        lambda kv: list(ctx.shuffle.keyed((old, (old, new)) for old, new in kv[1]))),
                    "before": inputs["person_merges"] | "KeyEarlierMerges" >> beam.ParDo(KeyTable("new_person_id", ctx.shuffle)),
                }
                | "JoinEarlierMerges" >> CoGroupByBucket()
                | "Repoint" >> beam.ParDo(_Repoint(ctx))
            )
        else:  # no earlier merges stored: nothing to repoint
            rows = merges | "MergeRows" >> beam.Map(
                lambda kv: (f"merges-{kv[0]:05d}", [r for old, new in kv[1] for r in _repoint((old, {"now": [new], "before": []}), ctx)]))
        scopes = (
            [merges | "MergedAway" >> beam.Map(lambda kv: [old for old, _new in kv[1]]), *gone]
            | "GonePersons" >> beam.Flatten()
            | "ScopeEverything" >> beam.Map(lambda persons: [(person, 0) for person in persons])
        )
        return {
            "persons": decided["persons"],
            "identity_map": (decided[ROWS], quarantine_rows[ROWS]) | "MapRowsAll" >> beam.Flatten(),
            MOVED: (decided[MOVED], quarantine_rows[MOVED]) | "MovedAll" >> beam.Flatten(),
            "person_merges": rows,
            "scopes": scopes,
        }
