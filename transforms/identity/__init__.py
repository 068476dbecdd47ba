"""Identity stitching: touchpoints -> identity graph -> guarded connected components -> persons.

    {touchpoints, dead_letters, <previous state>} | Identity(ctx, config)
        -> {touchpoints (with person_id, plus re-attributed history), dead_letters, identity_map,
            identity_links, identity_quarantine, person_merges, _recompute_scope}

Previous state comes from the warehouse (snapshots read at launch; any may be missing or empty):
``identity_map``, ``identity_links``, ``person_merges``, ``erasure_requests`` and ``history`` (the
stored touchpoints of the lookback window). The steps, one module each:

==========================  ===========================================================
``ApplyErasure``            :mod:`.erasure` -- honour the erasure list
``Stitch`` (:mod:`.stitch`):
``Stitch/BuildGraph``       :mod:`.graph` -- nodes and star links, merged with the stored graph
``Stitch/Guards``           :mod:`.guards` -- blocklist, degree caps, direct unique-id conflicts
``Stitch/Components``       :mod:`.components` -- connected components, O(log n) shuffle rounds
``Stitch/Conflicts``        :mod:`.conflicts` -- split components holding two values of a unique id
``Stitch/Persons``          :mod:`.persons` -- stable person ids, merges, identity_map rows
``Attribute``               :mod:`.attribute` -- person_id per touchpoint, late links
==========================  ===========================================================

docs/identity.md explains the algorithm, the guarantees and the measured quality.
"""

from __future__ import annotations

import apache_beam as beam

from ... import schemas
from ..context import RunContext
from ..labels import camel
from .attribute import AttributeTouchpoints
from .config import DEFAULT_DEGREE_CAPS, DEFAULT_LOOKBACK_DAYS, IdentityConfig
from .erasure import ApplyErasure
from .graph import parse_blocklist
from .stitch import StitchPersons

__all__ = ["Identity", "StitchPersons", "IdentityConfig", "STATE_TABLES", "OUTPUT_TABLES", "DEFAULT_DEGREE_CAPS",
           "DEFAULT_LOOKBACK_DAYS", "parse_blocklist"]

#: Stored tables the stitching reads at launch (``history`` is ``touchpoints`` of the lookback window).
STATE_TABLES = ("identity_map", "identity_links", "person_merges", "erasure_requests", "history")
#: Tables it writes (plus ``touchpoints`` and ``dead_letters``, passed through).
OUTPUT_TABLES = ("identity_map", "identity_links", "identity_quarantine", "person_merges", schemas.RECOMPUTE_SCOPE)


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
            return pipeline | f"No{camel(name)}" >> beam.Create([])

        # Steps that only matter with stored state are left out of the graph when it is absent
        # (a first run): every step costs fixed time on a local runner, even on no data.
        if "erasure_requests" in inputs:
            kept = (
                {"touchpoints": inputs["touchpoints"], "dead_letters": given("dead_letters"),
                 "erasure_requests": inputs["erasure_requests"],
                 **({"history": inputs["history"]} if "history" in inputs else {})}
                | "ApplyErasure" >> ApplyErasure()
            )
        else:
            kept = {"touchpoints": inputs["touchpoints"], "dead_letters": given("dead_letters"),
                    **({"history": inputs["history"]} if "history" in inputs else {})}
        stitched = (
            {"touchpoints": kept["touchpoints"],
             **{name: inputs[name] for name in ("identity_map", "identity_links", "person_merges") if name in inputs}}
            | "Stitch" >> StitchPersons(ctx, config)
        )
        attributed = (
            {"touchpoints": kept["touchpoints"], "persons": stitched["persons"], "excluded": stitched["excluded"],
             **({"history": kept["history"]} if "history" in kept else {})}
            | "Attribute" >> AttributeTouchpoints()
        )
        scopes = (
            (stitched["scopes"], attributed["scopes"])
            | "AllScopes" >> beam.Flatten()
            | "EarliestDay" >> beam.CombinePerKey(min)
            | "ScopeRows" >> beam.Map(lambda kv: {"person_id": kv[0], "from_date": kv[1]})
        )
        return {
            "touchpoints": attributed["touchpoints"],
            "dead_letters": kept["dead_letters"],
            **{table: stitched[table] for table in ("identity_map", "identity_links", "identity_quarantine", "person_merges")},
            schemas.RECOMPUTE_SCOPE: scopes,
        }
