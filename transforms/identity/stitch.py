"""Stitching alone: touchpoints' identifiers + stored graph -> persons (no attribution, no erasure).

    {touchpoints, [identity_map], [identity_links], [person_merges]} | StitchPersons(ctx, config)
        -> {persons: (id_hash, person_id), excluded: quarantined id_hashes, identity_map,
            identity_links, identity_quarantine, person_merges, scopes: (person_id, day)}

Composes :mod:`.graph` (``BuildGraph``), :mod:`.guards` (``Guards``), :mod:`.components`
(``Components``), :mod:`.conflicts` (``Conflicts``) and :mod:`.persons` (``Persons``). The
benchmark (benchmarks/identity_bench.py) measures this transform.
"""

from __future__ import annotations

import apache_beam as beam

from ..context import RunContext
from .broadcast import SetCache
from .components import ConnectedComponents
from .config import IdentityConfig
from .conflicts import ResolveConflicts
from .graph import BuildGraph, node_id
from .guards import JudgeIdentifiers, quarantine_row
from .persons import AssignPersons


class _ActiveLinks(beam.DoFn):
    """Links whose two ends are both usable (not quarantined)."""

    def setup(self):
        self._excluded = SetCache()

    def process(self, element, excluded):
        (a, b), _link = element
        skip = self._excluded(excluded)
        if a not in skip and b not in skip:
            yield element


def _labelled(element):
    """id_hash, {verdict, label} -> (id_hash, (component label, kind, verdict))."""
    id_hash, grouped = element
    verdicts = list(grouped["verdict"])
    if not verdicts:
        return
    verdict = verdicts[0]
    labels = list(grouped["label"])
    yield id_hash, (labels[0] if labels else node_id(verdict["kind"], id_hash), verdict["kind"], verdict)


def _link_row(element, run_id: str):
    (a, b), link = element
    if link["previous"] == (link["first_seen"], link["last_seen"]):
        return
    yield {"id_hash": a, "kind": link["kind"], "linked_hash": b, "linked_kind": link["linked_kind"],
           "first_seen": link["first_seen"], "last_seen": link["last_seen"], "run_id": run_id}


class StitchPersons(beam.PTransform):
    """Identifiers -> guarded, stable persons (see the module doc)."""

    def __init__(self, context: RunContext, config: IdentityConfig):
        super().__init__()
        self._ctx = context
        self._config = config

    def expand(self, inputs):
        ctx, config = self._ctx, self._config
        graph = (
            {name: inputs[name] for name in ("touchpoints", "identity_map", "identity_links") if name in inputs}
            | "BuildGraph" >> BuildGraph(ctx.hash_key_source, config.blocklist)
        )
        verdicts = graph | "Guards" >> JudgeIdentifiers(ctx.hash_key_source, config.blocklist, config.caps())
        linked = verdicts | "Linked" >> beam.Filter(lambda kv: kv[1]["reason"] is None)
        quarantined = verdicts | "Quarantined" >> beam.Filter(lambda kv: kv[1]["reason"] is not None)
        excluded = quarantined | "ExcludedHashes" >> beam.Keys()
        active = graph["links"] | "ActiveLinks" >> beam.ParDo(_ActiveLinks(), beam.pvalue.AsList(excluded))
        labels = (
            active
            | "RankedEdges" >> beam.Map(lambda kv: (node_id(kv[1]["kind"], kv[0][0]), node_id(kv[1]["linked_kind"], kv[0][1])))
            | "Components" >> ConnectedComponents(config.max_rounds, rank_chars=1)
            | "LabelByHash" >> beam.Map(lambda kv: (kv[0][1:], kv[1]))
        )
        labelled = (
            {"verdict": linked, "label": labels}
            | "JoinLabels" >> beam.CoGroupByKey()
            | "Labelled" >> beam.FlatMap(_labelled)
        )
        resolved = {"labelled": labelled, "links": active} | "Conflicts" >> ResolveConflicts()
        persons = (
            {"linked": resolved, "quarantined": quarantined,
             **({"person_merges": inputs["person_merges"]} if "person_merges" in inputs else {})}
            | "Persons" >> AssignPersons(ctx)
        )
        return {
            "persons": persons["persons"],
            "excluded": excluded,
            "identity_map": persons["identity_map"],
            "identity_links": graph["links"] | "LinkRows" >> beam.FlatMap(_link_row, ctx.run_id),
            "identity_quarantine": quarantined | "QuarantineRows" >> beam.Map(lambda kv: quarantine_row(kv[1], ctx.run_id)),
            "person_merges": persons["person_merges"],
            "scopes": persons["scopes"],
        }
