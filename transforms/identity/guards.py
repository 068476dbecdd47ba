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

import apache_beam as beam
from apache_beam.metrics import Metrics

from ..parse import NAMESPACE
from .graph import KnowsBlocklist, is_unique

BLOCKLISTED = "blocklisted"
DEGREE_CAP = "degree_cap"
CONFLICTING = "conflicting_unique_ids"
REASONS = (BLOCKLISTED, DEGREE_CAP, CONFLICTING)


def verdict(id_hash, kind, first_seen, last_seen, previous, degree, reason=None, conflicting_kinds=(), cap=None) -> dict:
    """An identifier with its degree and, when quarantined, the reason (``previous``: its stored
    identity_map row, or None)."""
    return {"id_hash": id_hash, "kind": kind, "first_seen": first_seen, "last_seen": last_seen, "previous": previous,
            "degree": degree, "reason": reason, "conflicting_kinds": list(conflicting_kinds), "cap": cap}


class _Tell(KnowsBlocklist, beam.DoFn):
    """A link -> one node event for each end: ("link", the other end, its kind, whether it is junk)."""

    def process(self, element):
        (a, b), link = element
        yield a, ("link", b, link["linked_kind"], b in self._blocked)
        yield b, ("link", a, link["kind"], a in self._blocked)


class _Summarize(beam.CombineFn):
    """Node events -> [kind, first_seen, last_seen, stored row, degree, {unique kind: <= 2 neighbours}].

    Events: ("seen", kind, first, last) from this run, ("previous", identity_map row), and
    ("link", neighbour, its kind, junk) once per distinct link (junk neighbours are not counted)."""

    def create_accumulator(self):
        return [None, None, None, None, 0, {}]

    def add_input(self, acc, event):
        tag = event[0]
        if tag == "link":
            _, other, kind, junk = event
            if not junk:
                acc[4] += 1
                if is_unique(kind):
                    seen = acc[5].setdefault(kind, set())
                    if len(seen) < 2:
                        seen.add(other)
            return acc
        if tag == "previous":
            row = event[1]
            acc[3] = row
            kind, first, last = row["kind"], row["first_seen"], row["last_seen"]
        else:
            _, kind, first, last = event
        acc[0] = kind
        acc[1] = first if acc[1] is None else min(acc[1], first)
        acc[2] = last if acc[2] is None else max(acc[2], last)
        return acc

    def merge_accumulators(self, accumulators):
        out = self.create_accumulator()
        for kind, first, last, previous, degree, uniques in accumulators:
            if kind is not None:
                out[0] = kind
                out[1] = first if out[1] is None else min(out[1], first)
                out[2] = last if out[2] is None else max(out[2], last)
            if previous is not None:
                out[3] = previous
            out[4] += degree
            for k, seen in uniques.items():
                merged = out[5].setdefault(k, set())
                for other in sorted(seen):
                    if len(merged) < 2:
                        merged.add(other)
        return out

    def extract_output(self, acc):
        return acc


class _Judge(KnowsBlocklist, beam.DoFn):
    def __init__(self, hash_key_source: str, extra_blocklist, caps: dict[str, int]):
        super().__init__(hash_key_source, extra_blocklist)
        self._caps = dict(caps)

    def setup(self):
        super().setup()
        self._counters = {r: Metrics.counter(NAMESPACE, f"identity.quarantined.{r}") for r in REASONS}

    def process(self, element):
        id_hash, (kind, first, last, previous, degree, uniques) = element
        if kind is None:  # only links point at it: an identifier erased since
            return
        conflicts = tuple(sorted(k for k, seen in uniques.items() if len(seen) > 1))
        cap = self._caps.get(kind)
        reason = None
        if id_hash in self._blocked:
            reason = BLOCKLISTED
        elif cap is not None and degree > cap:
            reason = DEGREE_CAP
        elif conflicts and not is_unique(kind):
            reason = CONFLICTING
        if reason is not None:
            self._counters[reason].inc()
        yield id_hash, verdict(id_hash, kind, first, last, previous, degree, reason,
                               conflicts if reason == CONFLICTING else (), cap if reason == DEGREE_CAP else None)


class JudgeIdentifiers(beam.PTransform):
    """{nodes: (id_hash, node event), links: ((a, b), link)} -> (id_hash, verdict) for every identifier.

    One lifted combine per identifier merges its observations, its stored row and its links."""

    def __init__(self, hash_key_source: str, extra_blocklist, caps: dict[str, int]):
        super().__init__()
        self._key_source = hash_key_source
        self._extra = tuple(extra_blocklist)
        self._caps = dict(caps)

    def expand(self, graph):
        told = graph["links"] | "Tell" >> beam.ParDo(_Tell(self._key_source, self._extra))
        return (
            (graph["nodes"], told)
            | "NodeEvents" >> beam.Flatten()
            | "Summarize" >> beam.CombinePerKey(_Summarize())
            | "Judge" >> beam.ParDo(_Judge(self._key_source, self._extra, self._caps))
        )


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
