"""Stitching alone: touchpoints' identifiers + stored graph -> persons (no attribution, no erasure).

    {touchpoints: (bucket, table), [identity_map], [identity_links], [person_merges], [identity_excluded]}
        | StitchPersons(ctx, config)
        -> {persons: (bucket of id_hash, packed [(id_hash, person_id)]), excluded: quarantined
            id_hashes, identity_map, identity_links, identity_quarantine, person_merges: (file key,
            rows), scopes: lists of (person_id, day)}

Stored tables (``identity_map``, ``identity_links``, ``person_merges``) come as Arrow tables of
their rows. Composes :mod:`.graph` (``BuildGraph``), :mod:`.guards` (``Guards``),
:mod:`.components` (``Components``), :mod:`.conflicts` (``Conflicts``) and :mod:`.persons`
(``Persons``); every shuffle moves batches keyed by bucket (:mod:`touchline.transforms.batches`).
The benchmark (benchmarks/identity_bench.py) measures this transform.
"""

from __future__ import annotations

import apache_beam as beam

from ..context import RunContext
from ..packing import CoGroupByBucket, Shuffle, unpack
from .broadcast import SetCache
from .components import ConnectedComponents
from .config import IdentityConfig
from .conflicts import ResolveConflicts
from .graph import BuildGraph, node_id
from .guards import LINKED, QUARANTINED, JudgeIdentifiers, quarantine_row
from .persons import AssignPersons, changed, map_row

EDGES = "edges"
ACTIVE = "active"


class _ActiveLinks(beam.DoFn):
    """(bucket, packed merged links) -> the links whose two ends are both usable (not
    quarantined): as ranked edges for the components step, and (tagged ``active``) as ``(a, b,
    first_seen)`` for the conflict splits."""

    def setup(self):
        self._excluded = SetCache()

    def process(self, element, excluded):
        _key, blob = element
        skip = self._excluded(excluded)
        edges, active = [], []
        for a, b, kind, linked_kind, first in unpack(blob):
            if a not in skip and b not in skip:
                edges.append((node_id(kind, a), node_id(linked_kind, b)))
                active.append((a, b, first))
        if edges:
            yield edges
            yield beam.pvalue.TaggedOutput(ACTIVE, active)


class _LabelByHash(beam.DoFn):
    """Lists of (node id, label) -> (bucket of the id_hash, packed [(id_hash, label)])."""

    def __init__(self, shuffle: Shuffle):
        self._shuffle = shuffle

    def process(self, pointers):
        yield from self._shuffle.keyed((n[1:], (n[1:], label)) for n, label in pointers)


class _Labelled(beam.DoFn):
    """(bucket, {verdict, label}) -> members ``(id_hash, component label, kind, verdict)`` keyed by
    the bucket of the label; an identifier without a label is its own component."""

    def __init__(self, shuffle: Shuffle):
        self._shuffle = shuffle

    def process(self, element):
        _key, groups = element
        labels = {h: label for records in groups["label"] for h, label in records}
        members = []
        for records in groups["verdict"]:
            for id_hash, verdict in records:
                label = labels.get(id_hash) or node_id(verdict["kind"], id_hash)
                members.append((label, (id_hash, label, verdict["kind"], verdict)))
        yield from self._shuffle.keyed(members)


def _quarantine_rows(element, ctx: RunContext):
    """Rows of quarantined identifiers whose stored state changed (new, or seen again): what is
    unchanged is not written again (so a run that does not read an identifier leaves the same rows)."""
    key, blob = element
    rows = [quarantine_row(verdict, ctx.run_id) for id_hash, verdict in unpack(blob)
            if changed(map_row(id_hash, verdict, None, ctx), verdict["previous"])]
    if rows:
        yield f"quarantine-{key:05d}", ctx.shuffle.pack(rows)


class StitchPersons(beam.PTransform):
    """Identifiers -> guarded, stable persons (see the module doc)."""

    def __init__(self, context: RunContext, config: IdentityConfig):
        super().__init__()
        self._ctx = context
        self._config = config

    def expand(self, inputs):
        ctx, config = self._ctx, self._config
        graph = (
            {name: inputs[name] for name in ("touchpoints", "identity_links") if name in inputs}
            | "BuildGraph" >> BuildGraph(ctx, config.blocklist)
        )
        verdicts = (
            {"nodes": graph["nodes"], "tells": graph["tells"], **({"identity_map": inputs["identity_map"]} if "identity_map" in inputs else {})}
            | "Guards" >> JudgeIdentifiers(ctx, config.blocklist, config.caps())
        )
        quarantined = verdicts[QUARANTINED]
        excluded = quarantined | "ExcludedHashes" >> beam.FlatMap(lambda kv: [h for h, _verdict in unpack(kv[1])])
        if "identity_excluded" in inputs:  # quarantined before and not judged again (not in this run's graph)
            stored = inputs["identity_excluded"] | "StoredExcluded" >> beam.FlatMap(lambda t: t.column("id_hash").to_pylist())
            excluded = (excluded, stored) | "AllExcluded" >> beam.Flatten()
        active = graph["links"] | "ActiveLinks" >> beam.ParDo(_ActiveLinks(), beam.pvalue.AsList(excluded)).with_outputs(
            ACTIVE, main=EDGES)
        labels = (
            active[EDGES]
            | "Components" >> ConnectedComponents(config.max_rounds, rank_chars=1, buckets=ctx.buckets, spill_dir=ctx.spill_dir)
            | "LabelByHash" >> beam.ParDo(_LabelByHash(ctx.shuffle))
        )
        labelled = (
            {"verdict": verdicts[LINKED], "label": labels}
            | "JoinLabels" >> CoGroupByBucket()
            | "Labelled" >> beam.ParDo(_Labelled(ctx.shuffle))
        )
        resolved = {"members": labelled, "links": active[ACTIVE]} | "Conflicts" >> ResolveConflicts(ctx.shuffle)
        persons = (
            {"linked": resolved, "quarantined": quarantined,
             **({"person_merges": inputs["person_merges"]} if "person_merges" in inputs else {})}
            | "Persons" >> AssignPersons(ctx, stored_map="identity_map" in inputs)
        )
        return {
            "persons": persons["persons"],
            "excluded": excluded,
            "identity_map": persons["identity_map"],
            "identity_links": graph["rows"],
            "identity_quarantine": quarantined | "QuarantineRows" >> beam.FlatMap(_quarantine_rows, ctx),
            "person_merges": persons["person_merges"],
            "scopes": persons["scopes"],
            "moved": persons["moved"],
        }
