"""Split components that would give one person two values of a unique id.

After the guards, a weak identifier seen directly with two customer_ids is quarantined; a
*chain* of weak identifiers can still connect two of them (customer A's e-mail on an anonymous
form with a cookie that later logs in as customer B). Such a component is resolved exactly, in
memory and per component (they are rare and small; every other component is left alone):
its links are replayed oldest first (``first_seen``, then the weaker end's priority, then the
hashes) through a union-find that refuses any union whose result would hold two values of one
unique kind. Older evidence wins, so a new link never re-assigns identifiers that already belonged
to a person; refused links are counted in ``touchline/identity.conflicts.refused_links``.

A person may hold one value of *each* unique kind: customer + employee is one person in two roles.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from ..parse import NAMESPACE
from .broadcast import SetCache
from .graph import is_unique, priority

CONFLICTING = "conflicting"


class _UniqueIds(beam.CombineFn):
    """(kind, id_hash) of a component's unique identifiers -> the kinds holding two or more values."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, value):
        kind, id_hash = value
        seen = acc.setdefault(kind, set())
        if len(seen) < 2:
            seen.add(id_hash)
        return acc

    def merge_accumulators(self, accumulators):
        out = {}
        for acc in accumulators:
            for kind, seen in acc.items():
                merged = out.setdefault(kind, set())
                for id_hash in sorted(seen):
                    if len(merged) < 2:
                        merged.add(id_hash)
        return out

    def extract_output(self, acc):
        return tuple(sorted(kind for kind, seen in acc.items() if len(seen) > 1))


def split_component(members: dict[str, str], links: list[tuple[str, str, int]]) -> tuple[dict[str, str], int]:
    """Constrained union-find. members: id_hash -> kind; links: (a, b, first_seen).
    Returns (id_hash -> sub-component label (its group's smallest (priority, hash) member), refused links)."""
    refused = 0
    parent = {h: h for h in members}
    uniques = {h: ({members[h]: h} if is_unique(members[h]) else {}) for h in members}

    def find(x):
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    order = sorted(links, key=lambda l: (l[2], max(priority(members[l[0]]), priority(members[l[1]])), l[0], l[1]))
    for a, b, _first in order:
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        ua, ub = uniques[ra], uniques[rb]
        if any(kind in ub and ub[kind] != value for kind, value in ua.items()):
            refused += 1
            continue
        parent[rb] = ra
        ua.update(ub)
        del uniques[rb]
    best: dict[str, tuple[int, str]] = {}
    for h in members:
        root = find(h)
        key = (priority(members[h]), h)
        if root not in best or key < best[root]:
            best[root] = key
    return {h: best[find(h)][1] for h in members}, refused


class _InConflict(beam.DoFn):
    """Members of conflicting components go to the ``conflicting`` output, the rest pass through."""

    def setup(self):
        self._bad = SetCache()

    def process(self, element, conflicting):
        if element[1][0] in self._bad(conflicting):
            yield beam.pvalue.TaggedOutput(CONFLICTING, element)
        else:
            yield element


class _Split(beam.DoFn):
    def setup(self):
        self._components = Metrics.counter(NAMESPACE, "identity.conflicts.components")
        self._refused = Metrics.counter(NAMESPACE, "identity.conflicts.refused_links")

    def process(self, element):
        label, grouped = element
        members = {id_hash: (kind, payload) for id_hash, kind, payload in grouped["members"]}
        links = list(grouped["links"])
        self._components.inc()
        labels, refused = split_component({h: kind for h, (kind, _) in members.items()}, links)
        self._refused.inc(refused)
        for id_hash, sub in labels.items():
            kind, payload = members[id_hash]
            yield id_hash, (f"{label}/{sub}", kind, payload)


class ResolveConflicts(beam.PTransform):
    """{labelled: (id_hash, (label, kind, payload)), links: ((a, b), link) between linked identifiers}
    -> (id_hash, (label, kind, payload)) for every identifier, labels of conflicting components split.

    The conflicting components' labels and members reach the filtering steps as side inputs: they
    are a small fraction of the graph by construction (direct conflicts are quarantined first)."""

    def expand(self, inputs):
        labelled = inputs["labelled"]
        conflicting = (
            labelled
            | "UniqueMembers" >> beam.FlatMap(lambda kv: [(kv[1][0], (kv[1][1], kv[0]))] if is_unique(kv[1][1]) else [])
            | "UniqueIdsPerComponent" >> beam.CombinePerKey(_UniqueIds())
            | "Conflicting" >> beam.FlatMap(lambda kv: [kv[0]] if kv[1] else [])
        )
        routed = labelled | "InConflict" >> beam.ParDo(_InConflict(), beam.pvalue.AsList(conflicting)).with_outputs(
            CONFLICTING, main="rest"
        )
        members = routed[CONFLICTING]
        member_links = inputs["links"] | "LinksInConflict" >> beam.FlatMap(
            lambda kv, where: [(where[kv[0][0]], (kv[0][0], kv[0][1], kv[1]["first_seen"]))] if kv[0][0] in where else [],
            where=beam.pvalue.AsDict(members | "LabelOfMember" >> beam.Map(lambda kv: (kv[0], kv[1][0]))),
        )
        split = (
            {
                "members": members | "ByComponent" >> beam.Map(lambda kv: (kv[1][0], (kv[0], kv[1][1], kv[1][2]))),
                "links": member_links,
            }
            | "GroupConflicting" >> beam.CoGroupByKey()
            | "Split" >> beam.ParDo(_Split())
        )
        return (routed["rest"], split) | "Resolved" >> beam.Flatten()
