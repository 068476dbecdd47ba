"""Identity stitching: touchpoints -> identity graph -> guarded connected components -> persons.

    {touchpoints, dead_letters, <previous state>} | Identity(ctx, config)
        -> {touchpoints (with person_id, plus re-attributed history), dead_letters, identity_map,
            identity_links, identity_quarantine, person_merges, _recompute_scope}

Previous state comes from the warehouse (snapshots read at launch; any may be missing or empty):
``identity_map``, ``identity_links``, ``person_merges``, ``erasure_requests`` and ``history`` (the
stored touchpoints of the lookback window). The steps, one module each:

====================  =================================================================
``ApplyErasure``      :mod:`.erasure` -- honour the erasure list
``BuildGraph``        :mod:`.graph` -- nodes and star links, merged with the stored graph
``Guards``            :mod:`.guards` -- blocklist, degree caps, direct unique-id conflicts
``Components``        :mod:`.components` -- connected components, O(log n) shuffle rounds
``Conflicts``         :mod:`.conflicts` -- split components holding two values of a unique id
``Persons``           :mod:`.persons` -- stable person ids, merges, identity_map rows
``Attribute``         :mod:`.attribute` -- person_id per touchpoint, late links
====================  =================================================================

docs/identity.md explains the algorithm, the guarantees and the measured quality.
"""

from __future__ import annotations

import apache_beam as beam

from ... import schemas
from ..context import RunContext
from .attribute import AttributeTouchpoints
from .broadcast import SetCache
from .components import ConnectedComponents
from .config import DEFAULT_DEGREE_CAPS, DEFAULT_LOOKBACK_DAYS, IdentityConfig
from .conflicts import ResolveConflicts
from .erasure import ApplyErasure
from .graph import BuildGraph, node_id, parse_blocklist
from .guards import JudgeIdentifiers, quarantine_row
from .persons import AssignPersons

__all__ = ["Identity", "IdentityConfig", "STATE_TABLES", "OUTPUT_TABLES", "DEFAULT_DEGREE_CAPS",
           "DEFAULT_LOOKBACK_DAYS", "parse_blocklist"]

#: Stored tables the stitching reads at launch (``history`` is ``touchpoints`` of the lookback window).
STATE_TABLES = ("identity_map", "identity_links", "person_merges", "erasure_requests", "history")
#: Tables it writes (plus ``touchpoints`` and ``dead_letters``, passed through).
OUTPUT_TABLES = ("identity_map", "identity_links", "identity_quarantine", "person_merges", schemas.RECOMPUTE_SCOPE)


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


class Identity(beam.PTransform):
    """The identity stage of the pipeline (see the module doc)."""

    def __init__(self, context: RunContext, config: IdentityConfig | None = None):
        super().__init__()
        self._ctx = context
        self._config = config or IdentityConfig()

    def expand(self, inputs):
        ctx, config = self._ctx, self._config
        pipeline = inputs["touchpoints"].pipeline

        def given(name):
            if name in inputs:
                return inputs[name]
            return pipeline | f"No{''.join(p.capitalize() for p in name.split('_'))}" >> beam.Create([])

        kept = (
            {name: given(name) for name in ("touchpoints", "history", "dead_letters", "erasure_requests")}
            | "ApplyErasure" >> ApplyErasure()
        )
        graph = (
            {"touchpoints": kept["touchpoints"], "identity_map": given("identity_map"),
             "identity_links": given("identity_links")}
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
            {"linked": resolved, "quarantined": quarantined, "person_merges": given("person_merges")}
            | "Persons" >> AssignPersons(ctx)
        )
        attributed = (
            {"touchpoints": kept["touchpoints"], "history": kept["history"], "persons": persons["persons"],
             "excluded": excluded}
            | "Attribute" >> AttributeTouchpoints()
        )
        scopes = (
            (persons["scopes"], attributed["scopes"])
            | "AllScopes" >> beam.Flatten()
            | "EarliestDay" >> beam.CombinePerKey(min)
            | "ScopeRows" >> beam.Map(lambda kv: {"person_id": kv[0], "from_date": kv[1]})
        )
        return {
            "touchpoints": attributed["touchpoints"],
            "dead_letters": kept["dead_letters"],
            "identity_map": persons["identity_map"],
            "identity_links": graph["links"] | "LinkRows" >> beam.FlatMap(_link_row, ctx.run_id),
            "identity_quarantine": quarantined | "QuarantineRows" >> beam.Map(lambda kv: quarantine_row(kv[1], ctx.run_id)),
            "person_merges": persons["person_merges"],
            schemas.RECOMPUTE_SCOPE: scopes,
        }
