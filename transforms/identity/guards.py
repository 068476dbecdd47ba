"""Guards against over-merging: which identifiers must not link persons, and why.

Computed over the whole identity graph (stored links of every run plus this run's), so a device
seen with one new customer a day reaches its cap on the day it crosses it, whatever the batching:

* ``blocklisted`` -- a junk value (``graph.JUNK_ANY``, ``graph.JUNK_BY_KIND``, ``--blocklist_file``), by keyed hash.
* ``degree_cap`` -- linked to more distinct identifiers than its kind's cap (kiosk devices, shared
  inboxes, a test account): ``IdentityConfig.caps()``. Junk neighbours are not counted.
* ``conflicting_unique_ids`` -- a weak identifier (e-mail, phone, device, cookie, card) linked
  directly to two different values of one unique kind (two customer_ids: a household device or a
  shared family inbox). Indirect conflicts, through chains of weak identifiers, are resolved per
  component afterwards (:mod:`.conflicts`).

Quarantined identifiers stay in ``identity_map`` (status ``quarantined``, no person) and are listed
with their reason in ``identity_quarantine``; they are not used for linking or attribution.
"""

from __future__ import annotations

from typing import Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics

from ... import schemas
from .. import batches
from ..packing import CoGroupByBucket, KeyTable, Shuffle
from ..parse import NAMESPACE
from .graph import KnowsBlocklist, is_unique

MAP_SPEC = schemas.table_schema("identity_map")
LINKED = "linked"
QUARANTINED = "quarantined"

BLOCKLISTED = "blocklisted"
DEGREE_CAP = "degree_cap"
CONFLICTING = "conflicting_unique_ids"
REASONS = (BLOCKLISTED, DEGREE_CAP, CONFLICTING)


def verdict(id_hash, kind, first_seen, last_seen, previous, degree, reason=None, conflicting_kinds=(), cap=None) -> dict:
    """An identifier with its degree and, when quarantined, the reason (``previous``: its stored
    identity_map row, or None)."""
    return {"id_hash": id_hash, "kind": kind, "first_seen": first_seen, "last_seen": last_seen, "previous": previous,
            "degree": degree, "reason": reason, "conflicting_kinds": list(conflicting_kinds), "cap": cap}


def summarize(nodes: Iterable[tuple], stored: Iterable[dict], tells: Iterable[tuple]) -> dict[str, list]:
    """Everything known about each identifier of a bucket -> ``{id_hash: [kind, first_seen,
    last_seen, stored identity_map row, degree, {unique kind: <= 2 neighbours}]}``.

    ``nodes``: this run's observations ``(id_hash, kind, first, last)``; ``stored``: the
    identity_map rows; ``tells``: ``(id_hash, neighbour, its kind, junk)`` once per distinct link
    (junk neighbours are not counted). An identifier only links point at (erased since) has kind None."""
    out: dict[str, list] = {}

    def entry(h):
        acc = out.get(h)
        if acc is None:
            acc = out[h] = [None, None, None, None, 0, {}]
        return acc

    def seen(acc, kind, first, last):
        acc[0] = kind
        acc[1] = first if acc[1] is None else min(acc[1], first)
        acc[2] = last if acc[2] is None else max(acc[2], last)

    for h, kind, first, last in nodes:
        seen(entry(h), kind, first, last)
    for row in stored:
        acc = entry(row["id_hash"])
        acc[3] = row
        seen(acc, row["kind"], row["first_seen"], row["last_seen"])
    for h, other, kind, junk in tells:
        if junk:
            continue
        acc = entry(h)
        acc[4] += 1
        if is_unique(kind):
            neighbours = acc[5].setdefault(kind, set())
            if len(neighbours) < 2:
                neighbours.add(other)
    return out


def judge(id_hash: str, summary: list, blocked: frozenset | set, caps: dict[str, int]) -> dict | None:
    """The verdict of one summarized identifier (None for one only links point at)."""
    kind, first, last, previous, degree, uniques = summary
    if kind is None:
        return None
    conflicts = tuple(sorted(k for k, seen in uniques.items() if len(seen) > 1))
    cap = caps.get(kind)
    reason = None
    if id_hash in blocked:
        reason = BLOCKLISTED
    elif cap is not None and degree > cap:
        reason = DEGREE_CAP
    elif conflicts and not is_unique(kind):
        reason = CONFLICTING
    return verdict(id_hash, kind, first, last, previous, degree, reason,
                   conflicts if reason == CONFLICTING else (), cap if reason == DEGREE_CAP else None)


class _Judge(KnowsBlocklist, batches.BatchDoFn):
    """(bucket, {nodes, tells, stored}) -> (bucket, [(id_hash, verdict)]) of linked identifiers;
    quarantined ones tagged ``quarantined`` (a list per bucket)."""

    def __init__(self, hash_key_source: str, extra_blocklist, caps: dict[str, int], shuffle: Shuffle):
        super().__init__(hash_key_source, extra_blocklist)
        self._caps = dict(caps)
        self._shuffle = shuffle

    def setup(self):
        super().setup()
        self._counters = {r: Metrics.counter(NAMESPACE, f"identity.quarantined.{r}") for r in REASONS}

    def _work(self, element):
        key, groups = element
        stored = (row for table in groups.get("stored", ()) for row in batches.datum_rows(table, MAP_SPEC))
        summaries = summarize((n for records in groups["nodes"] for n in records), stored,
                              (t for records in groups["tells"] for t in records))
        linked, quarantined, counts = [], [], {}
        for id_hash, summary in summaries.items():
            result = judge(id_hash, summary, self._blocked, self._caps)
            if result is None:
                continue
            if result["reason"] is None:
                linked.append((id_hash, result))
            else:
                quarantined.append((id_hash, result))
                counts[result["reason"]] = counts.get(result["reason"], 0) + 1
        for reason, n in counts.items():
            self._counters[reason].inc(n)
        if linked:
            yield key, self._shuffle.pack(linked)
        if quarantined:
            yield beam.pvalue.TaggedOutput(QUARANTINED, (key, self._shuffle.pack(quarantined)))


class JudgeIdentifiers(beam.PTransform):
    """{nodes: node observations by bucket, tells: by bucket, [identity_map: stored row tables]}
    -> {linked: (bucket, packed [(id_hash, verdict)]), quarantined: the same for quarantined identifiers}.

    One grouping per node bucket merges each identifier's observations, its stored row and its links."""

    def __init__(self, context, extra_blocklist, caps: dict[str, int]):
        super().__init__()
        self._ctx = context
        self._extra = tuple(extra_blocklist)
        self._caps = dict(caps)

    def expand(self, graph):
        inputs = {"nodes": graph["nodes"], "tells": graph["tells"]}
        if "identity_map" in graph:  # absent on a first run
            inputs["stored"] = graph["identity_map"] | "KeyStoredNodes" >> beam.ParDo(KeyTable("id_hash", self._ctx.shuffle))
        judged = (
            inputs
            | "JoinNodeEvents" >> CoGroupByBucket()
            | "Judge" >> beam.ParDo(_Judge(self._ctx.hash_key_source, self._extra, self._caps, self._ctx.shuffle)).with_outputs(
                QUARANTINED, main=LINKED)
        )
        return {LINKED: judged[LINKED], QUARANTINED: judged[QUARANTINED]}


def quarantine_row(verdict: dict, run_id: str) -> dict:
    """The identity_quarantine row of a quarantined identifier."""
    return {
        "id_hash": verdict["id_hash"],
        "kind": verdict["kind"],
        "reason": verdict["reason"],
        "degree": verdict["degree"],
        "cap": verdict["cap"],
        "conflicting_kinds": list(verdict["conflicting_kinds"]),
        "first_seen": verdict["first_seen"],
        "last_seen": verdict["last_seen"],
        "run_id": run_id,
    }
