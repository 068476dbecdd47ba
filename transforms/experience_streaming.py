"""Journeys and cumulative scores in a stream: Beam state and event-time timers per person.

The streaming counterpart of :mod:`.experience`, built from the same functions (no second copy of
the model): per person (their roles are scored separately inside, each with its own decayed score;
one key per person because the combined ``all`` row needs every role's state at once), Beam state
holds

* the **checkpoint** -- per role, the ``person_scores_daily`` row of the last day no acceptable
  event can change any more (its state: the decayed score split by signal, decayed activity, the
  latest survey answer), plus the rows of the days after it;
* the person's touchpoints from ``model.context_days`` before the first open day on (the rules look
  back that far), and the journeys already written.

**Per touchpoint** (in arrival order, whatever its event time within the allowed lateness)
:func:`~.experience.score_person` recomputes the person from the first day the touchpoint can change
(the start of the journey holding it, moved back while a journey spans midnight) starting from the
stored state of the day before -- ``S(t2) = S(t1) * 2^(-(t2 - t1) / H) + w`` per day, the daily caps,
the saturating 0-100 curve, the survey override window, the combined row -- and emits the
``person_scores_daily`` rows of those days and the ``person_scores_current`` rows. The result is the
batch recompute's, to the bit, in any arrival order: the same fold from the same checkpoint.

**Journeys** close on inactivity: an event-time timer at ``journey end + gap + allowed lateness``
(after it, no acceptable event can extend or precede the journey) writes every journey that has
closed, once. The same timer advances the checkpoint and forgets touchpoints no longer needed.

A touchpoint that slips past the lateness gate (within the gate's clock lag) into a day that is
already checkpointed is still scored from the nearest stored state and counted
``touchline.experience/stream_beyond_checkpoint``; the scheduled batch run reconciles it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Tuple

import apache_beam as beam
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp

from .experience import CURRENT, DAILY, JOURNEYS, METRICS, ExperienceSettings, _Tools, first_changed_day, score_person
from .journeys import MICROS_PER_DAY, analyze, journey_row
from .scoring.model import ScoringModel
from .warehouse.stream_writer import SEQ

MICROS = 1_000_000
#: score_person clamps recomputes to a lookback; a stream's bound is its allowed lateness instead.
_UNBOUNDED_DAYS = 1_000_000


def _empty_state() -> dict[str, Any]:
    return {"daily": {}, "current": {}, "journeys": {}, "checkpoint_day": None, "seq": 0}


class _PersonExperienceFn(beam.DoFn):
    TOUCHPOINTS = BagStateSpec("touchpoints", coders.PickleCoder())
    SCORES = ReadModifyWriteStateSpec("scores", coders.PickleCoder())
    CLOSE = TimerSpec("close", TimeDomain.WATERMARK)

    def __init__(self, model: ScoringModel, gap_hours: float, allowed_lateness: float):
        self._model = model
        self._gap_hours = gap_hours
        self._lateness = int(allowed_lateness * MICROS)

    def setup(self):
        self._tools = _Tools(self._model)
        self._settings = ExperienceSettings(journey_gap_hours=self._gap_hours, lookback_days=_UNBOUNDED_DAYS)
        self._gap = self._settings.gap_micros
        self._limit = GlobalWindow().max_timestamp().micros
        self._counters: dict[str, Any] = {}

    def _count(self, name: str, n: int = 1) -> None:
        if name not in self._counters:
            self._counters[name] = Metrics.counter(METRICS, name)
        self._counters[name].inc(n)

    # -- helpers ---------------------------------------------------------------------------------
    def _journeys(self, touchpoints: list[dict]):
        """{role: steps}, {role: journeys} of the held touchpoints."""
        by_role: dict[str, list[dict]] = defaultdict(list)
        for tp in touchpoints:
            by_role[tp["role"]].append(tp)
        steps = {role: self._tools.classifier.steps(tps) for role, tps in by_role.items()}
        journeys = {role: analyze(s, self._model, self._gap, self._tools.rules) for role, s in steps.items()}
        return steps, journeys

    def _next_timer(self, steps, journeys, written: dict[str, int]) -> int | None:
        """When the next journey closes (or, with none open, when the held touchpoints can go)."""
        ends, last = [], None
        for role, js in journeys.items():
            for j in js:
                end = steps[role][j.end - 1].time
                last = end if last is None else max(last, end)
                first_id = steps[role][j.start].event_id
                if (role, first_id) not in written:
                    ends.append(end)
        if ends:
            return min(ends) + self._gap + self._lateness + 1
        if last is None:
            return None
        return (last // MICROS_PER_DAY + self._model.context_days + 1) * MICROS_PER_DAY + self._lateness + 1

    def _set(self, timer, at: int | None) -> None:
        if at is not None:
            timer.set(Timestamp(micros=min(at, self._limit)))

    # -- per touchpoint --------------------------------------------------------------------------
    def process(self, element, held=beam.DoFn.StateParam(TOUCHPOINTS), scores=beam.DoFn.StateParam(SCORES),
                close=beam.DoFn.TimerParam(CLOSE)):
        person_id, touchpoint = element
        touchpoints = [tp for tp in held.read()]
        if any(tp["event_id"] == touchpoint["event_id"] for tp in touchpoints):
            self._count("stream_repeated_event")  # the dedup horizon passed; the warehouse merges it by key
            return
        state = scores.read() or _empty_state()
        if state["checkpoint_day"] is not None and touchpoint["event_date"] < state["checkpoint_day"]:
            self._count("stream_beyond_checkpoint")
        result = score_person(person_id, [*((0, tp) for tp in touchpoints), (1, touchpoint)], (),
                              state["daily"].values(), state["current"].values(), self._model, self._settings,
                              touchpoint["event_date"], self._tools)
        held.add(touchpoint)
        touchpoints.append(touchpoint)
        if result.scope is not None:
            first = result.scope["from_date"]
            daily = {k: row for k, row in state["daily"].items() if row["score_date"] < first}
            daily.update({(row["role"], row["score_date"]): row for row in result.daily})
            state["daily"] = daily
            state["current"].update({row["role"]: row for row in result.current})
            # successive versions of a row may reach the writer out of order: number them
            seq = state["seq"] = max(state.get("seq", 0) + 1, time.time_ns())
            for row in result.daily:
                yield beam.pvalue.TaggedOutput(DAILY, {**row, SEQ: seq})
            for row in result.current:
                yield beam.pvalue.TaggedOutput(CURRENT, {**row, SEQ: seq})
            self._count("stream_updates")
        scores.write(state)
        steps, journeys = self._journeys(touchpoints)
        self._set(close, self._next_timer(steps, journeys, state["journeys"]))

    # -- journeys close; the checkpoint advances ----------------------------------------------------
    @on_timer(CLOSE)
    def _close(self, key=beam.DoFn.KeyParam, fired=beam.DoFn.TimestampParam, held=beam.DoFn.StateParam(TOUCHPOINTS),
               scores=beam.DoFn.StateParam(SCORES), close=beam.DoFn.TimerParam(CLOSE)):
        person_id = key
        touchpoints = list(held.read())
        state = scores.read() or _empty_state()
        frontier = fired.micros - self._lateness  # no acceptable event is older than this
        steps, journeys = self._journeys(touchpoints)
        written = state["journeys"]
        first_open: dict[str, int] = {}
        for role, js in journeys.items():
            for j in js:
                start, end = steps[role][j.start].time, steps[role][j.end - 1].time
                key_ = (role, steps[role][j.start].event_id)
                if end + self._gap < frontier:
                    if key_ not in written:
                        written[key_] = end
                        self._count("journeys_closed")
                        yield beam.pvalue.TaggedOutput(
                            JOURNEYS, journey_row(person_id, role, steps[role], j, self._model, self._tools.weights))
                else:
                    first_open[role] = min(first_open.get(role, start), start)
        # The first day an acceptable event can still change: the start of a journey it could join, else its own day.
        safe = min([t // MICROS_PER_DAY for t in first_open.values()] + [frontier // MICROS_PER_DAY])
        safe = first_changed_day(journeys, steps, {}, safe)
        state["checkpoint_day"] = safe
        # Keep per role the last row before the safe day (the checkpoint) and every row after it.
        latest_before: dict[str, tuple] = {}
        for k, row in state["daily"].items():
            if row["score_date"] < safe and (row["role"] not in latest_before
                                              or row["score_date"] > state["daily"][latest_before[row["role"]]]["score_date"]):
                latest_before[row["role"]] = k
        state["daily"] = {k: row for k, row in state["daily"].items()
                          if row["score_date"] >= safe or latest_before.get(row["role"]) == k}
        # Forget whole written journeys that end before the rules' look-back of the safe day.
        line = (safe - self._model.context_days) * MICROS_PER_DAY
        gone = set()
        for role, js in journeys.items():
            for j in js:
                end = steps[role][j.end - 1].time
                if end < line and (role, steps[role][j.start].event_id) in written:
                    gone.update(s.event_id for s in steps[role][j.start:j.end])
        if gone:
            kept = [tp for tp in touchpoints if tp["event_id"] not in gone]
            held.clear()
            for tp in kept:
                held.add(tp)
            touchpoints = kept
            self._count("stream_forgotten_touchpoints", len(gone))
        state["journeys"] = {k: end for k, end in written.items() if end >= line}
        scores.write(state)
        steps, journeys = self._journeys(touchpoints)
        self._set(close, self._next_timer(steps, journeys, state["journeys"]))


class ExperienceStreaming(beam.PTransform):
    """Attributed touchpoints (one per event_id, stamped with event time) ->
    ``{journeys, person_scores_daily, person_scores_current}`` updates (see the module doc).
    Touchpoints without a person are not scored (as in batch)."""

    def __init__(self, model: ScoringModel, journey_gap_hours: float, allowed_lateness: float):
        super().__init__()
        self._model = model
        self._gap_hours = journey_gap_hours
        self._lateness = allowed_lateness

    def expand(self, touchpoints):
        results = (
            touchpoints
            | "KeyByPerson" >> beam.FlatMap(lambda tp: [(tp["person_id"], tp)] if tp.get("person_id") else [])
            .with_output_types(Tuple[str, Any])
            | "ScorePerson" >> beam.ParDo(_PersonExperienceFn(self._model, self._gap_hours, self._lateness))
            .with_outputs(JOURNEYS, DAILY, CURRENT)
        )
        return {JOURNEYS: results[JOURNEYS], DAILY: results[DAILY], CURRENT: results[CURRENT]}


__all__ = ["ExperienceStreaming"]
