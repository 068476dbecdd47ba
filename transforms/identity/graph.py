"""The identity graph: identifiers of each touchpoint -> nodes and links, merged with the stored graph.

Nodes are identifier hashes (``touchpoints.identifiers[].id_hash``: normalized, keyed-hashed; no
clear text ever reaches this module). Each touchpoint adds a **star**, not a clique: its strongest
identifier (lowest ``KINDS`` priority, then smallest hash; junk values never chosen while another
identifier exists) is linked to every other identifier of the event. A star has as many links as
the event has identifiers minus one and connects the same identifiers as a clique would.

Links are combined with the previous run's ``identity_links`` rows, and nodes (in :mod:`.guards`,
together with their degree) with the ``identity_map`` rows, by lifted combiners (the shuffle carries
one partial state per key and bundle): first and last seen are min and max over every run, which
makes the result independent of input order, duplicates and re-runs.

The blocklist of junk values is compared by keyed hash: the values below (and any from
``--blocklist_file``) are normalized and hashed with the run's key in ``DoFn.setup``.
"""

from __future__ import annotations

from typing import Any, Iterable

import apache_beam as beam

from ..identifiers import KINDS, Hasher, normalize, resolve_key

#: Junk values for every kind: placeholders typed into forms or sent by SDKs with tracking off.
JUNK_ANY = ("null", "none", "nil", "undefined", "unknown", "n/a", "na", "-", "0", "-1", "test", "nan", "[object object]")
#: Junk values of one kind (all-zero ids, test addresses, the Android emulator's ANDROID_ID).
JUNK_BY_KIND: dict[str, tuple[str, ...]] = {
    "email": ("test@test.com", "test@example.com", "none@none.com", "noemail@noemail.com", "no@email.com",
              "email@example.com", "example@example.com", "noreply@example.com", "a@a.com", "x@x.com"),
    "phone": ("0000000000", "00000000000", "1234567890", "9999999999", "1111111111", "123456789"),
    "device_id": ("00000000-0000-0000-0000-000000000000", "0000000000000000", "00000000000000000000000000000000",
                  "9774d56d682e549c", "ffffffff-ffff-ffff-ffff-ffffffffffff"),
    "cookie_id": ("00000000-0000-0000-0000-000000000000",),
    "card_fingerprint": ("fp_0000000000000000",),
}


def default_blocklist() -> tuple[tuple[str, str], ...]:
    """(kind or "*", value) pairs of the built-in blocklist."""
    return tuple(("*", v) for v in JUNK_ANY) + tuple((k, v) for k, vs in JUNK_BY_KIND.items() for v in vs)


def blocklist_hashes(hasher: Hasher, extra: Iterable[tuple[str, str]] = ()) -> frozenset[str]:
    """Keyed hashes of every blocklisted (kind, value), built-in and extra."""
    hashes = set()
    for kind, value in (*default_blocklist(), *extra):
        for k in (KINDS if kind == "*" else (kind,)):
            norm = normalize(k, value)
            if norm:
                hashes.add(hasher.hash(k, norm))
    return frozenset(hashes)


def parse_blocklist(lines: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Blocklist file lines -> (kind or "*", value). ``kind:value`` limits a value to one kind when the
    prefix is a known kind (otherwise the whole line is the value, e.g. a MAC address); ``#`` starts a
    comment line; blank lines are skipped."""
    entries = []
    for line in lines:
        text = line.rstrip("\r\n")
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        prefix, sep, rest = text.partition(":")
        if sep and prefix.strip() in KINDS:
            entries.append((prefix.strip(), rest))
        else:
            entries.append(("*", text))
    return tuple(entries)


def priority(kind: str) -> int:
    return KINDS.get(kind, (9, False))[0]


def is_unique(kind: str) -> bool:
    return KINDS.get(kind, (9, False))[1]


def node_id(kind: str, id_hash: str) -> str:
    """Node id in the components step: the kind's priority digit, then the hash (stronger sorts first)."""
    return f"{priority(kind)}{id_hash}"


def strongest(identifiers: list[dict], skip: frozenset | set = frozenset()) -> dict | None:
    """The strongest identifier (lowest priority, then smallest hash) whose hash is not in ``skip``."""
    best, best_key = None, None
    for ident in identifiers:
        if ident["id_hash"] in skip:
            continue
        key = (priority(ident["kind"]), ident["id_hash"])
        if best_key is None or key < best_key:
            best, best_key = ident, key
    return best


# Records crossing shuffles are plain dicts, as rows are everywhere in Touchline: Beam encodes a
# dict about seven times faster than a NamedTuple.
#
# link:    {kind, linked_kind, first_seen, last_seen, previous: (first_seen, last_seen) stored before or None}
# verdict: see guards.verdict


def observation(kind: str, first_seen: int, last_seen: int) -> tuple:
    """A node event: the identifier seen on a touchpoint (see ``guards`` for how node events combine)."""
    return ("seen", kind, first_seen, last_seen)


NODES = "nodes"
LINKS = "links"


class KnowsBlocklist:
    """Mixin for DoFns that compare identifiers with the blocklist: ``self._blocked`` (keyed hashes
    of every blocklisted value, built-in and extra) is built in ``setup`` on the worker, from the hash
    key source, so no key or hash set is pickled. Subclasses with more setup call ``super().setup()``."""

    def __init__(self, hash_key_source: str, extra_blocklist: tuple[tuple[str, str], ...] = ()):
        self._key_source = hash_key_source
        self._extra = extra_blocklist

    def setup(self):
        self._blocked = blocklist_hashes(Hasher(resolve_key(self._key_source)), self._extra)


class _Observe(KnowsBlocklist, beam.DoFn):
    """Touchpoint -> (id_hash, (kind, t, t)) per identifier, ((a, b), (kind_a, kind_b, t, t)) per star link."""

    def process(self, touchpoint):
        identifiers = touchpoint["identifiers"]
        t = touchpoint["event_time"]
        for ident in identifiers:
            yield beam.pvalue.TaggedOutput(NODES, (ident["id_hash"], observation(ident["kind"], t, t)))
        if len(identifiers) < 2:
            return
        center = strongest(identifiers, self._blocked) or strongest(identifiers)
        c = center["id_hash"]
        for ident in identifiers:
            h = ident["id_hash"]
            if h == c:
                continue
            if c < h:
                yield (c, h), (center["kind"], ident["kind"], t, t)
            else:
                yield (h, c), (ident["kind"], center["kind"], t, t)


class _MergeLink(beam.CombineFn):
    """Observations (kind_a, kind_b, first, last) and ("previous", row) -> link dict."""

    def create_accumulator(self):
        return [None, None, None, None, None]

    def add_input(self, acc, value):
        previous = None
        if value[0] == "previous":
            row = value[1]
            previous = (row["first_seen"], row["last_seen"])
            value = (row["kind"], row["linked_kind"], row["first_seen"], row["last_seen"])
        return self.merge_accumulators([acc, [*value, previous]])

    def merge_accumulators(self, accumulators):
        out = self.create_accumulator()
        for kind, linked_kind, first, last, previous in accumulators:
            if previous is not None:
                out[4] = previous
            if kind is None:
                continue
            out[0], out[1] = kind, linked_kind
            out[2] = first if out[2] is None else min(out[2], first)
            out[3] = last if out[3] is None else max(out[3], last)
        return out

    def extract_output(self, acc):
        kind, linked_kind, first, last, previous = acc
        return {"kind": kind, "linked_kind": linked_kind, "first_seen": first, "last_seen": last, "previous": previous}


class _Seen(beam.CombineFn):
    """``("seen", kind, first, last)`` observations of one identifier -> one, with the earliest first
    and the latest last seen (an identifier's kind is part of its hash: the same in every observation)."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, event):
        return self.merge_accumulators([acc, event])

    def merge_accumulators(self, accumulators):
        out = None
        for event in accumulators:
            if event is None:
                continue
            out = event if out is None else ("seen", event[1], min(out[2], event[2]), max(out[3], event[3]))
        return out

    def extract_output(self, acc):
        return acc


def _link_observation(element):
    """((a, b), link dict of this run's observations) -> ((a, b), (kind_a, kind_b, first, last))."""
    key, link = element
    return key, (link["kind"], link["linked_kind"], link["first_seen"], link["last_seen"])


class BuildGraph(beam.PTransform):
    """{touchpoints, [identity_map], [identity_links]} -> {nodes: (id_hash, node event), links: ((a, b), link)}.

    ``identity_map`` / ``identity_links`` are the stored rows of the previous run (may be empty).
    Node events -- ``("seen", kind, first, last)`` per identifier occurrence and ``("previous", row)``
    per stored row -- are combined per identifier together with its degree by ``guards``.

    This run's observations are combined per identifier (and per link) by lifted combiners right
    where they are made, *before* they meet the stored rows: a touchpoint makes a node event per
    identifier and a link per non-central identifier, so combining first turns millions of raw
    events into one per distinct identifier before the flatten (which the local runner
    materializes) and the shuffle. min/max are associative: the result is the same."""

    def __init__(self, hash_key_source: str, extra_blocklist: tuple[tuple[str, str], ...] = ()):
        super().__init__()
        self._key_source = hash_key_source
        self._extra = tuple(extra_blocklist)

    def expand(self, inputs):
        observed = inputs["touchpoints"] | "Observe" >> beam.ParDo(_Observe(self._key_source, self._extra)).with_output_types(Any).with_outputs(
            NODES, main=LINKS
        )
        nodes = [observed[NODES] | "CombineSeen" >> beam.CombinePerKey(_Seen())]
        links = [observed[LINKS]]
        if "identity_links" in inputs:  # combined before meeting the stored links (absent: one input, fused)
            links = [observed[LINKS] | "CombineObserved" >> beam.CombinePerKey(_MergeLink()) | "Observed" >> beam.Map(_link_observation)]
        if "identity_map" in inputs:  # absent on a first run
            nodes.append(inputs["identity_map"] | "StoredNodes" >> beam.Map(lambda row: (row["id_hash"], ("previous", row))))
        if "identity_links" in inputs:
            links.append(inputs["identity_links"] | "StoredLinks" >> beam.Map(
                lambda row: ((row["id_hash"], row["linked_hash"]), ("previous", row))))
        nodes = nodes | "AllNodes" >> beam.Flatten()
        links = links | "AllLinks" >> beam.Flatten() | "MergeLinks" >> beam.CombinePerKey(_MergeLink())
        return {NODES: nodes, LINKS: links}
