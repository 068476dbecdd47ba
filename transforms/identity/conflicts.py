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

from typing import Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics

from ..packing import GroupBuckets, Shuffle
from ..parse import NAMESPACE
from .graph import is_unique, priority

CONFLICTING = "conflicting"


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


def conflicting_kinds(members: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """Unique kinds holding two or more values among a component's ``(id_hash, kind)`` members."""
    values: dict[str, set] = {}
    for id_hash, kind in members:
        if is_unique(kind):
            values.setdefault(kind, set()).add(id_hash)
    return tuple(sorted(kind for kind, seen in values.items() if len(seen) > 1))


def by_label(lists: Iterable[list]) -> dict[str, list]:
    """Member records ``(id_hash, label, kind, verdict)`` -> ``{label: [records]}``."""
    out: dict[str, list] = {}
    for records in lists:
        for record in records:
            out.setdefault(record[1], []).append(record)
    return out


class _FindConflicts(beam.DoFn):
    """(bucket, [members of the bucket's components]) -> (bucket of label, packed members of the
    components without a conflict); members of conflicting components tagged, one by one (they are
    few: direct conflicts were quarantined by the guards)."""

    def __init__(self, shuffle: Shuffle):
        self._shuffle = shuffle

    def process(self, element):
        key, lists = element
        resolved = []
        for label, members in by_label(lists).items():
            if conflicting_kinds((h, kind) for h, _label, kind, _verdict in members):
                for member in members:
                    yield beam.pvalue.TaggedOutput(CONFLICTING, member)
            else:
                resolved.extend(members)
        if resolved:
            yield key, self._shuffle.pack(resolved)


class _Split(beam.DoFn):
    def __init__(self, shuffle: Shuffle):
        self._shuffle = shuffle

    def setup(self):
        self._components = Metrics.counter(NAMESPACE, "identity.conflicts.components")
        self._refused = Metrics.counter(NAMESPACE, "identity.conflicts.refused_links")

    def process(self, element):
        label, grouped = element
        members = {id_hash: (kind, payload) for id_hash, _label, kind, payload in grouped["members"]}
        links = list(grouped["links"])
        self._components.inc()
        labels, refused = split_component({h: kind for h, (kind, _) in members.items()}, links)
        self._refused.inc(refused)
        out = []
        for id_hash, sub in labels.items():
            kind, payload = members[id_hash]
            sub_label = f"{label}/{sub}"
            out.append((sub_label, (id_hash, sub_label, kind, payload)))
        yield from self._shuffle.keyed(out)


class ResolveConflicts(beam.PTransform):
    """{members: (bucket of label, packed [(id_hash, label, kind, verdict)]), links: lists of active
    links (a, b, first_seen)} -> (bucket of label, packed members) with the labels of conflicting
    components split (see the module doc).

    The conflicting components' members reach the link filter as a side input: they are a small
    fraction of the graph by construction (direct conflicts are quarantined first)."""

    def __init__(self, shuffle: Shuffle):
        super().__init__()
        self._shuffle = shuffle

    def expand(self, inputs):
        routed = (
            inputs["members"]
            | "GroupComponents" >> GroupBuckets()
            | "FindConflicts" >> beam.ParDo(_FindConflicts(self._shuffle)).with_outputs(CONFLICTING, main="resolved")
        )
        members = routed[CONFLICTING]
        member_links = inputs["links"] | "LinksInConflict" >> beam.FlatMap(
            lambda links, where: [(where[a], (a, b, first)) for a, b, first in links if a in where],
            where=beam.pvalue.AsDict(members | "LabelOfMember" >> beam.Map(lambda m: (m[0], m[1]))),
        )
        split = (
            {
                "members": members | "ByComponent" >> beam.Map(lambda m: (m[1], m)),
                "links": member_links,
            }
            | "GroupConflicting" >> beam.CoGroupByKey()
            | "Split" >> beam.ParDo(_Split(self._shuffle))
        )
        return (routed["resolved"], split) | "Resolved" >> beam.Flatten()
