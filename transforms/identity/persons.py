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
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from ..context import RunContext
from ..parse import NAMESPACE
from .graph import priority

MERGES = "merges"
ROWS = "rows"
VANISHED = "vanished"
LINKED = "linked"
QUARANTINED = "quarantined"


def derived_person_id(id_hash: str) -> str:
    return "p_" + hashlib.blake2b(id_hash.encode(), digest_size=10, person=b"touchline-person").hexdigest()


def candidate(person_id: str, identified: bool, first_seen: int) -> tuple[str, bool, int]:
    """A previous person whose home is a component: (person_id, identified, first_seen)."""
    return (person_id, identified, first_seen)


class _Home(beam.CombineFn):
    """Previous rows of one person -> (home (priority, hash, label) or None, identified, first_seen)."""

    def create_accumulator(self):
        return (None, False, None)

    def add_input(self, acc, value):
        home, kind, first_seen = value  # home: (priority, hash, label) for linked identifiers, else None
        return self.merge_accumulators([acc, (home, priority(kind) == 0, first_seen)])

    def merge_accumulators(self, accumulators):
        best, identified, first = None, False, None
        for home, ident, seen in accumulators:
            if home is not None and (best is None or home < best):
                best = home
            identified = identified or ident
            if seen is not None and (first is None or seen < first):
                first = seen
        return (best, identified, first)

    def extract_output(self, acc):
        return acc


def choose_person(strongest: tuple[int, str], candidates: list[tuple[str, bool, int]]) -> str:
    """The person id of a component (see the module doc); candidates are (person_id, identified, first_seen)."""
    identified = [c for c in candidates if c[1]]
    if identified:
        return min(identified, key=lambda c: (c[2], c[0]))[0]
    if candidates and strongest[0] != 0:
        return min(candidates, key=lambda c: (c[2], c[0]))[0]
    return derived_person_id(strongest[1])


class _Decide(beam.DoFn):
    """label, {members, candidates} -> (id_hash, person_id) per member; changed identity_map rows and
    merges (old, new) tagged. The members are iterated twice (strongest first, then rows): on runners
    that page grouped values (Dataflow) a large component is never held in memory."""

    def __init__(self, context: RunContext):
        self._ctx = context

    def setup(self):
        self._persons = Metrics.counter(NAMESPACE, "identity.persons")
        self._merged = Metrics.counter(NAMESPACE, "identity.merged_persons")

    def process(self, element):
        _label, grouped = element
        members = grouped["members"]
        strongest = min(((priority(kind), id_hash) for id_hash, kind, _ in members), default=None)
        if strongest is None:
            return
        candidates = sorted(grouped["candidates"])
        person = choose_person(strongest, candidates)
        self._persons.inc()
        for old, _identified, _first in candidates:
            if old != person:
                self._merged.inc()
                yield beam.pvalue.TaggedOutput(MERGES, (old, person))
        for id_hash, _kind, verdict in members:
            yield id_hash, person
            row = map_row(id_hash, verdict, person, self._ctx)
            if changed(row, verdict["previous"]):
                yield beam.pvalue.TaggedOutput(ROWS, row)


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


def _previous_of_linked(element):
    """A linked identifier that belonged to a person before -> (that person, (home key, kind, first_seen))."""
    id_hash, (label, kind, verdict) = element
    previous = verdict["previous"]
    if previous and previous["person_id"]:
        yield previous["person_id"], ((priority(kind), id_hash, label), kind, previous["first_seen"])


def _previous_of_quarantined(element):
    """A quarantined identifier that belonged to a person before: it counts for the person, but is no home."""
    _id_hash, verdict = element
    previous = verdict["previous"]
    if previous and previous["person_id"]:
        yield previous["person_id"], (None, verdict["kind"], previous["first_seen"])


def _quarantined_rows(element, ctx: RunContext):
    id_hash, verdict = element
    row = map_row(id_hash, verdict, None, ctx)
    if changed(row, verdict["previous"]):
        yield row


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


class AssignPersons(beam.PTransform):
    """{linked: (id_hash, (label, kind, verdict)), quarantined: (id_hash, verdict), [person_merges: stored rows]}
    -> {persons: (id_hash, person_id) of linked identifiers, identity_map: changed rows,
        person_merges: new and repointed rows, scopes: (person_id, 0) of merged-away/vanished persons}."""

    def __init__(self, context: RunContext):
        super().__init__()
        self._ctx = context

    def expand(self, inputs):
        ctx = self._ctx
        linked, quarantined = inputs["linked"], inputs["quarantined"]
        previous_linked = linked | "PreviousLinked" >> beam.FlatMap(_previous_of_linked)
        previous_quarantined = quarantined | "PreviousQuarantined" >> beam.FlatMap(_previous_of_quarantined)
        homes = (
            (previous_linked, previous_quarantined)
            | "PreviousPersons" >> beam.Flatten()
            | "HomeOfPerson" >> beam.CombinePerKey(_Home())
        )
        candidates = homes | "Candidates" >> beam.FlatMap(
            lambda kv: [(kv[1][0][2], candidate(kv[0], kv[1][1], kv[1][2]))] if kv[1][0] is not None else []
        )
        vanished = homes | "Vanished" >> beam.FlatMap(lambda kv: [kv[0]] if kv[1][0] is None else [])
        decided = (
            {"members": linked | "MembersByLabel" >> beam.Map(lambda kv: (kv[1][0], (kv[0], kv[1][1], kv[1][2]))),
             "candidates": candidates}
            | "JoinCandidates" >> beam.CoGroupByKey()
            | "Decide" >> beam.ParDo(_Decide(ctx)).with_output_types(Any).with_outputs(MERGES, ROWS, main="persons")
        )
        quarantine_rows = quarantined | "QuarantinedRows" >> beam.FlatMap(_quarantined_rows, ctx)
        if "person_merges" in inputs:
            merges = (
                {
                    "now": decided[MERGES],
                    "before": inputs["person_merges"] | "ByNewPerson" >> beam.Map(lambda row: (row["new_person_id"], row)),
                }
                | "JoinEarlierMerges" >> beam.CoGroupByKey()
                | "Repoint" >> beam.FlatMap(_repoint, ctx)
            )
        else:  # no earlier merges stored: nothing to repoint
            merges = decided[MERGES] | "MergeRows" >> beam.FlatMap(lambda kv: _repoint((kv[0], {"now": [kv[1]], "before": []}), ctx))
        scopes = (
            (decided[MERGES] | "MergedAway" >> beam.Keys(), vanished)
            | "GonePersons" >> beam.Flatten()
            | "ScopeEverything" >> beam.Map(lambda person: (person, 0))
        )
        return {
            "persons": decided["persons"],
            "identity_map": (decided[ROWS], quarantine_rows) | "MapRowsAll" >> beam.Flatten(),
            "person_merges": merges,
            "scopes": scopes,
        }
