"""The identity graph: identifiers of each touchpoint -> nodes and links, merged with the stored graph.

Nodes are identifier hashes (``touchpoints.identifiers[].id_hash``: normalized, keyed-hashed; no
clear text ever reaches this module). Each touchpoint adds a **star**, not a clique: its strongest
identifier (lowest ``KINDS`` priority, then smallest hash; junk values never chosen while another
identifier exists) is linked to every other identifier of the event. A star has as many links as
the event has identifiers minus one and connects the same identifiers as a clique would.

Observations are combined per touchpoint batch (:func:`observe`), then links per link bucket with
the previous runs' ``identity_links`` rows (:func:`merge_links`), and nodes (in :mod:`.guards`,
together with their degree) per node bucket with the ``identity_map`` rows: first and last seen are
min and max over every run, which makes the result independent of input order, duplicates and
re-runs.

The blocklist of junk values is compared by keyed hash: the values below (and any from
``--blocklist_file``) are normalized and hashed with the run's key in ``DoFn.setup``.
"""

from __future__ import annotations

from typing import Iterable

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from ... import schemas
from .. import batches
from ..identifiers import KINDS, Hasher, normalize, resolve_key
from ..packing import CoGroupByBucket, KeyTable, Shuffle, unpack

LINKS_SPEC = schemas.table_schema("identity_links")

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


NODES = "nodes"
LINKS = "links"
TELLS = "tells"
ROWS = "rows"


class KnowsBlocklist:
    """Mixin for DoFns that compare identifiers with the blocklist: ``self._blocked`` (keyed hashes
    of every blocklisted value, built-in and extra) is built in ``setup`` on the worker, from the hash
    key source, so no key or hash set is pickled. Subclasses with more setup call ``super().setup()``."""

    def __init__(self, hash_key_source: str, extra_blocklist: tuple[tuple[str, str], ...] = ()):
        self._key_source = hash_key_source
        self._extra = extra_blocklist

    def setup(self):
        self._blocked = blocklist_hashes(Hasher(resolve_key(self._key_source)), self._extra)


def observe(identifiers: Iterable[list[dict]], times: Iterable[int], blocked: frozenset | set) -> tuple[dict, dict]:
    """Node and link observations of touchpoints (their identifier lists and event times), each
    combined over the touchpoints given: ``({id_hash: [kind, first, last]}, {(a, b): [kind_a,
    kind_b, first, last]})`` with ``a < b``. A touchpoint links its center -- the strongest
    identifier that is not junk (else the strongest) -- to each of its other identifiers (a star).
    An identifier's kind is part of its hash, so kinds never disagree."""
    nodes: dict[str, list] = {}
    links: dict[tuple[str, str], list] = {}
    for idents, t in zip(identifiers, times):
        for ident in idents:
            node = nodes.get(ident["id_hash"])
            if node is None:
                nodes[ident["id_hash"]] = [ident["kind"], t, t]
            else:
                if t < node[1]:
                    node[1] = t
                if t > node[2]:
                    node[2] = t
        if len(idents) < 2:
            continue
        center = strongest(idents, blocked) or strongest(idents)
        c, c_kind = center["id_hash"], center["kind"]
        for ident in idents:
            h = ident["id_hash"]
            if h == c:
                continue
            key, kinds = ((c, h), (c_kind, ident["kind"])) if c < h else ((h, c), (ident["kind"], c_kind))
            link = links.get(key)
            if link is None:
                links[key] = [*kinds, t, t]
            else:
                if t < link[2]:
                    link[2] = t
                if t > link[3]:
                    link[3] = t
    return nodes, links


class _Observe(KnowsBlocklist, batches.BatchDoFn):
    """(bucket, touchpoint table) -> node observations ``(id_hash, kind, first, last)`` keyed by the
    bucket of the identifier, link observations ``(a, b, kind_a, kind_b, first, last)`` keyed by the
    bucket of ``a`` (tagged ``links``); both combined over the batch first."""

    def __init__(self, hash_key_source: str, extra_blocklist, shuffle: Shuffle):
        super().__init__(hash_key_source, extra_blocklist)
        self._shuffle = shuffle

    def _work(self, element):
        _key, blob = element
        table = unpack(blob)
        times = pc.cast(table.column("event_time"), pa.int64()).to_pylist()
        nodes, links = observe((ids or [] for ids in table.column("identifiers").to_pylist()), times, self._blocked)
        yield from self._shuffle.keyed((h, (h, *node)) for h, node in nodes.items())
        for keyed in self._shuffle.keyed((a, (a, b, *link)) for (a, b), link in links.items()):
            yield beam.pvalue.TaggedOutput(LINKS, keyed)


def merge_links(observed: Iterable[tuple], stored: Iterable[dict]) -> dict[tuple[str, str], list]:
    """This run's link observations and the stored ``identity_links`` rows of the same links ->
    ``{(a, b): [kind, linked_kind, first_seen, last_seen, previous]}``: first and last seen over every
    run, ``previous`` the stored ``(first_seen, last_seen)`` (None for a new link)."""
    merged: dict[tuple[str, str], list] = {}

    def add(key, kind, linked_kind, first, last, previous=None):
        link = merged.get(key)
        if link is None:
            merged[key] = [kind, linked_kind, first, last, previous]
            return
        link[0], link[1] = kind, linked_kind
        link[2] = min(link[2], first)
        link[3] = max(link[3], last)
        if previous is not None:
            link[4] = previous

    for a, b, kind, linked_kind, first, last in observed:
        add((a, b), kind, linked_kind, first, last)
    for row in stored:
        add((row["id_hash"], row["linked_hash"]), row["kind"], row["linked_kind"], row["first_seen"], row["last_seen"],
            (row["first_seen"], row["last_seen"]))
    return merged


def link_row(a: str, b: str, link: list, run_id: str) -> dict | None:
    """The ``identity_links`` row of a merged link, or None when it is unchanged since stored."""
    kind, linked_kind, first, last, previous = link
    if previous == (first, last):
        return None
    return {"id_hash": a, "kind": kind, "linked_hash": b, "linked_kind": linked_kind,
            "first_seen": first, "last_seen": last, "run_id": run_id}


class _MergeLinks(KnowsBlocklist, batches.BatchDoFn):
    """(bucket, {observed, stored}) -> merged links ``(a, b, kind, linked_kind, first_seen)`` of the
    bucket; tagged: the changed ``identity_links`` rows, and per end of every link a *tell*
    ``(node, other end, its kind, other end is junk)`` keyed by the node's bucket (the guards count
    a node's degree from them)."""

    def __init__(self, hash_key_source: str, extra_blocklist, context):
        super().__init__(hash_key_source, extra_blocklist)
        self._ctx = context

    def _work(self, element):
        key, groups = element
        stored = (row for table in groups.get("stored", ()) for row in batches.datum_rows(table, LINKS_SPEC))
        merged = merge_links((r for records in groups["observed"] for r in records), stored)
        rows, links, tells = [], [], []
        blocked = self._blocked
        for (a, b), link in merged.items():
            row = link_row(a, b, link, self._ctx.run_id)
            if row is not None:
                rows.append(row)
            links.append((a, b, link[0], link[1], link[2]))
            tells.append((a, (a, b, link[1], b in blocked)))
            tells.append((b, (b, a, link[0], a in blocked)))
        if links:
            yield key, self._ctx.shuffle.pack(links)
        if rows:
            yield beam.pvalue.TaggedOutput(ROWS, (f"links-{key:05d}", rows))
        for keyed in self._ctx.shuffle.keyed(tells):
            yield beam.pvalue.TaggedOutput(TELLS, keyed)


class BuildGraph(beam.PTransform):
    """{touchpoints: (bucket, table), [identity_links: stored row tables]} -> {nodes: node
    observations by node bucket, links: merged links by link bucket, tells: by node bucket,
    rows: changed ``identity_links`` rows}.

    This run's observations are combined per batch where they are made (one record per distinct
    identifier and link of the batch), then per bucket with the stored links: first and last seen
    are min and max over every run, which makes the result independent of input order, duplicates
    and re-runs."""

    def __init__(self, context, extra_blocklist: tuple[tuple[str, str], ...] = ()):
        super().__init__()
        self._ctx = context
        self._extra = tuple(extra_blocklist)

    def expand(self, inputs):
        ctx = self._ctx
        observed = inputs["touchpoints"] | "Observe" >> beam.ParDo(
            _Observe(ctx.hash_key_source, self._extra, ctx.shuffle)).with_outputs(LINKS, main=NODES)
        links = {"observed": observed[LINKS]}
        if "identity_links" in inputs:  # absent on a first run
            links["stored"] = inputs["identity_links"] | "KeyStoredLinks" >> beam.ParDo(KeyTable("id_hash", ctx.shuffle))
        merged = (
            links
            | "JoinLinks" >> CoGroupByBucket()
            | "MergeLinks" >> beam.ParDo(_MergeLinks(ctx.hash_key_source, self._extra, ctx)).with_outputs(ROWS, TELLS, main=LINKS)
        )
        return {NODES: observed[NODES], LINKS: merged[LINKS], TELLS: merged[TELLS], ROWS: merged[ROWS]}
