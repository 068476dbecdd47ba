"""Identity stitching: touchpoints -> identity graph -> guarded connected components -> persons.

    {touchpoints, dead_letters, <previous state>} | Identity(ctx, config)
        -> {touchpoints (with person_id, plus re-attributed history), dead_letters, identity_map,
            identity_links, identity_quarantine, person_merges, _recompute_scope}

Previous state comes from the warehouse (snapshots read at launch; any may be missing or empty):
``identity_map``, ``identity_links``, ``person_merges``, ``erasure_requests`` and ``history`` (the
stored touchpoints of the lookback window; with ``unreplayed``, the part of them a read already
knows this run does not have again). The steps, one module each:

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
from ..packing import unpack
from .attribute import HISTORY, SCOPES, STORED, UNMOVED, UNREPLAYED, AttributeTouchpoints, MarkReplayed, SplitMovable
from .config import DEFAULT_DEGREE_CAPS, DEFAULT_LOOKBACK_DAYS, IdentityConfig
from .erasure import DropErasedDeadLetters, StripErased, erased_hashes
from .graph import parse_blocklist
from .stitch import StitchPersons

__all__ = ["Identity", "StitchPersons", "IdentityConfig", "STATE_TABLES", "OUTPUT_TABLES", "DEFAULT_DEGREE_CAPS",
           "DEFAULT_LOOKBACK_DAYS", "parse_blocklist"]

#: Stored inputs of the stage (``history``: ``touchpoints`` of the lookback window; ``unreplayed``: more of
#: them, of events the read knows this run does not have -- they skip the join with the run's event
#: ids; ``identity_excluded``: ``identity_map`` rows of quarantined identifiers the run's graph reaches
#: but does not judge again).
STATE_TABLES = ("identity_map", "identity_links", "person_merges", "erasure_requests", "history", UNREPLAYED,
                "identity_excluded")
#: Tables it writes (plus ``touchpoints`` and ``dead_letters``, passed through).
OUTPUT_TABLES = ("identity_map", "identity_links", "identity_quarantine", "person_merges", schemas.RECOMPUTE_SCOPE)


def _event_ids(element, shuffle):
    key, blob = element
    yield key, shuffle.pack(unpack(blob).column("event_id").to_pylist())


def _union(lists) -> list[str]:
    """Lists of hashes -> one sorted list of them all."""
    return sorted({value for values in lists for value in values})


def _scope_rows(rows):
    if rows:
        yield "identity", [{"person_id": person, "from_date": day} for person, day in sorted(rows)]


class Identity(beam.PTransform):
    """The identity stage of the pipeline (see the module doc).

    Inputs: ``touchpoints`` -- (bucket of event_id, packed table), one row per event_id;
    ``dead_letters`` -- (file key, packed rows); stored tables as Arrow tables of their rows (any may be
    missing: a first run). Outputs: ``touchpoints`` (bucket, packed: this run's attributed plus the
    re-attributed stored ones), ``stored`` (bucket, packed: the other stored touchpoints, as stored),
    ``scopes`` (lists of (person_id, day)), ``dead_letters`` and every identity table as (file key, rows: packed where the rows cross a
    flatten on their way to staging -- dead letters, identity_map, identity_quarantine -- so the
    local runner's driver holds a path, not the rows)."""

    def __init__(self, context: RunContext, config: IdentityConfig | None = None, history_from: int | None = None,
                 moved_history: beam.PTransform | None = None):
        """``history_from``: the first day (days since the epoch) of ``history`` rows that take part
        in attribution, when the caller read stored touchpoints further back for later stages (the
        others pass through as stored); None: all of them (``history`` is the lookback window).

        ``moved_history``: when ``history`` holds only part of the lookback (the caller's later
        stages need the rest of it only where a person changes), the step that reads the other
        stored touchpoints that can move: PCollection of one sorted list of the hashes of identifiers whose
        person or status changed this run (``Stitch``'s ``moved``, united) -> stored touchpoint tables
        (``touchline.transforms.warehouse.state.ReadMovedHistory``). They join ``history``."""
        super().__init__()
        self._ctx = context
        self._config = config or IdentityConfig()
        self._history_from = history_from
        self._moved_history = moved_history

    def expand(self, inputs):
        ctx, config = self._ctx, self._config
        pipeline = inputs["touchpoints"].pipeline

        def given(name):
            if name in inputs:
                return inputs[name]
            return pipeline | f"No{camel(name)}" >> beam.Create([])

        # Steps that only matter with stored state are left out of the graph when it is absent
        # (a first run): every step costs fixed time on a local runner, even on no data.
        touchpoints, dead_letters = inputs["touchpoints"], given("dead_letters")
        erased = None
        if "erasure_requests" in inputs:
            erased = beam.pvalue.AsList(inputs["erasure_requests"] | "ErasedHashes" >> beam.FlatMap(erased_hashes))
            touchpoints = touchpoints | "StripTouchpoints" >> beam.ParDo(StripErased(ctx.shuffle), erased)
            dead_letters = dead_letters | "DropDeadLetters" >> beam.ParDo(DropErasedDeadLetters(ctx.shuffle), erased)
        stitched = (
            {"touchpoints": touchpoints,
             **{name: inputs[name] for name in ("identity_map", "identity_links", "person_merges", "identity_excluded")
                if name in inputs}}
            | "Stitch" >> StitchPersons(ctx, config)
        )
        history = unmoved = None
        if "history" in inputs:
            moved = stitched["moved"] | "AllMoved" >> beam.CombineGlobally(_union)
            stored = {"stored": inputs["history"]}
            if UNREPLAYED in inputs:  # set apart by the read: this run does not have their events
                stored[UNREPLAYED] = inputs[UNREPLAYED]
            if self._moved_history is not None:  # the older stored touchpoints that can move, read now
                stored["moved"] = moved | "ReadMovedHistory" >> self._moved_history
            history = (
                {"run": touchpoints | "RunEventIds" >> beam.FlatMap(_event_ids, ctx.shuffle), **stored}
                | "MarkReplayed" >> MarkReplayed(ctx.shuffle)
            )
            if erased is not None:
                history = history | "StripHistory" >> beam.ParDo(StripErased(ctx.shuffle, history=True), erased)
            # only the stored touchpoints attribution can change go through it
            split = history | "SplitMovable" >> beam.ParDo(SplitMovable(ctx.shuffle), beam.pvalue.AsSingleton(moved)).with_outputs(
                UNMOVED, main=HISTORY)
            history, unmoved = split[HISTORY], split[UNMOVED]
        attributed = (
            {"touchpoints": touchpoints, "persons": stitched["persons"], "excluded": stitched["excluded"],
             **({"history": history} if history is not None else {})}
            | "Attribute" >> AttributeTouchpoints(ctx.shuffle, self._history_from, attribute=config.lookback_days > 0)
        )
        scopes = [stitched["scopes"]]
        if history is not None:
            scopes.append(attributed[SCOPES])
        scopes = scopes | "AllScopes" >> beam.Flatten()
        scope_rows = (
            scopes
            | "ScopePairs" >> beam.FlatMap(lambda pairs: pairs)
            | "EarliestDay" >> beam.CombinePerKey(min)
            | "AllScopeRows" >> beam.combiners.ToList()
            | "ScopeRows" >> beam.FlatMap(_scope_rows)
        )
        out = {
            "touchpoints": attributed["touchpoints"],
            "scopes": scopes,
            "dead_letters": dead_letters,
            **{table: stitched[table] for table in ("identity_map", "identity_links", "identity_quarantine", "person_merges")},
            schemas.RECOMPUTE_SCOPE: scope_rows,
        }
        if history is not None:
            out[STORED] = (attributed[STORED], unmoved) | "AllStored" >> beam.Flatten()
        return out
