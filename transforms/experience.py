"""Journeys and cumulative experience scores, recomputed incrementally per person.

``ComputeExperience(ctx, model, settings)`` is the stage after identity stitching. Inputs (a dict of
PCollections; rows in datum form):

``touchpoints``          this run's attributed touchpoints, ``(bucket of person_id, packed table)``:
                         new events, late events, and every touchpoint identity re-attributed
                         this run
``recompute_scope``      identity's ``_recompute_scope`` rows (person_id, from_date): persons whose
                         history changed (late links, merges) from that day; from_date 1970-01-01
                         means the person id is retired (merged away): all its derived rows go.
                         Optional.
``stored``               stored touchpoints of the read window, ``(bucket of event_id, packed
                         table)``: the affected persons' (identity's ``stored`` output, attributed
                         again) and other persons' survey answers (for the survey aggregates only;
                         read by ``touchline.transforms.warehouse.state.ReadStoredState``)
``history_daily``        warehouse ``person_scores_daily`` rows of the affected persons from the
                         earliest recomputable day on (Arrow tables)
``history_current``      warehouse ``person_scores_current`` rows older than that day
``history_survey_days``  warehouse ``survey_aggregates`` rows older than the read window (their
                         days are not re-aggregated; read at launch).

Every ``stored`` / ``history_*`` input is optional: leave it out when nothing is stored (a first run); the steps
that only serve it are then left out of the graph.

Outputs (a dict): ``journeys``, ``person_scores_daily``, ``person_scores_current``,
``survey_aggregates``, ``_recompute_scope`` (stage exactly this one: it already includes identity's
rows, adjusted) and ``dead_letters``.

How a run recomputes a person (pure function :func:`score_person`):

1. The person's first changed day F is the start day of the journey holding their earliest
   touchpoint of this run (a late event can extend or bridge journeys), or identity's from_date,
   moved back while a journey of the person spans midnight of F. For a person with stored scores
   F is never before the earliest recomputable day E = logical date - ``lookback_days`` (older
   changes are counted in ``touchline.experience/clamped_scope`` and applied from E on only); a
   person never scored before (a first load, a backfill) has nothing stored to agree with, so
   all of their touchpoints in the run are scored.
2. Per role, the checkpoint is the state at the end of the last activity day before F, read from
   the stored rows (each daily row carries the state it started from, so any F has one).
3. Journeys, flags and day states from F on are recomputed from the person's touchpoints (rules
   look back at most ``model.context_days``, which the read window covers); the run stages them
   with the scope row (person, F): the commit replaces exactly the person's rows from F on.

So a run over a new day of data, starting from the previous scores, writes the same rows as a full
recompute over all days, in any arrival order, as long as late data stays within the lookback.
Survey aggregates are recomputed for every day with an answer in this run that the run can see in
full: days in the read window, or days with no stored aggregate yet.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from .. import schemas
from . import batches
from .context import RunContext
from .errors import Redactor, dead_letter
from .identifiers import Hasher, resolve_key
from .journeys import MICROS_PER_DAY, MICROS_PER_HOUR, Journey, JourneyRules, analyze, journey_row
from .packing import CoGroupByBucket, KeyTable, Shuffle, unpack
from .scoring.combined import combined_row
from .scoring.cumulative import State
from .scoring.daily import current_row, daily_row, fold, prev_state_from_row, state_from_row
from .scoring.model import ALL_ROLES, ScoringModel
from .scoring.signals import Classifier, Step
from .scoring.surveys import AggregateSurveys, partial_stats

JOURNEYS = "journeys"
DAILY = "person_scores_daily"
CURRENT = "person_scores_current"
SURVEYS = "survey_aggregates"
SCOPE = schemas.RECOMPUTE_SCOPE
DEAD_LETTERS = "dead_letters"
#: Tables a run of this stage stages (and commits).
TABLES = (JOURNEYS, DAILY, CURRENT, SURVEYS, SCOPE)
METRICS = "touchline.experience"
TOUCHPOINT_SPEC = schemas.table_schema("touchpoints")
DAILY_SPEC = schemas.table_schema(DAILY)
CURRENT_SPEC = schemas.table_schema(CURRENT)
RETIRED = 0  # from_date 1970-01-01: the person id no longer exists


@dataclass(frozen=True)
class ExperienceSettings:
    """Run settings of the stage (from ``--journey_gap_hours`` and ``--score_lookback_days``)."""

    journey_gap_hours: float = 12.0
    lookback_days: int = 7

    def __post_init__(self):
        if not self.journey_gap_hours > 0:
            raise ValueError(f"journey gap must be positive, got {self.journey_gap_hours!r} hours")
        if isinstance(self.lookback_days, bool) or not isinstance(self.lookback_days, int) or self.lookback_days < 0:
            raise ValueError(f"lookback must be a whole number of days >= 0, got {self.lookback_days!r}")

    @property
    def gap_micros(self) -> int:
        return int(self.journey_gap_hours * MICROS_PER_HOUR)

    def earliest_day(self, logical_day: int) -> int:
        """E: the first day a run may recompute (days since the epoch)."""
        return logical_day - self.lookback_days

    def window_start(self, logical_day: int, model: ScoringModel) -> int:
        """W: the first day of touchpoints a run reads (E minus the rules' look-back)."""
        return self.earliest_day(logical_day) - model.context_days


@dataclass
class PersonResult:
    journeys: list[dict] = field(default_factory=list)
    daily: list[dict] = field(default_factory=list)
    current: list[dict] = field(default_factory=list)
    scope: dict | None = None
    counters: dict[str, int] = field(default_factory=dict)


class _Tools:
    """Per-model helpers, built once per worker."""

    def __init__(self, model: ScoringModel):
        self.classifier = Classifier(model)
        self.rules = JourneyRules(model)
        self.weights = model.weights()
        self.caps = model.daily_caps()


def _journey_holding(journeys: list[Journey], steps: list[Step], time: int) -> Journey:
    for j in journeys:
        if steps[j.start].time <= time <= steps[j.end - 1].time:
            return j
    raise AssertionError("every step belongs to a journey")


def first_changed_day(journeys: dict[str, list[Journey]], steps: dict[str, list[Step]], changed: dict[str, int],
                      identity_from: int | None) -> int | None:
    """F before clamping: start day of the journey holding the earliest change (per role), or
    identity's day, moved back while a journey spans midnight of F."""
    candidates = [steps[role][_journey_holding(journeys[role], steps[role], t).start].time // MICROS_PER_DAY
                  for role, t in changed.items()]
    if identity_from is not None:
        candidates.append(identity_from)
    if not candidates:
        return None
    first = min(candidates)
    moved = True
    while moved:
        moved = False
        midnight = first * MICROS_PER_DAY
        for role, js in journeys.items():
            for j in js:
                start, end = steps[role][j.start].time, steps[role][j.end - 1].time
                if start < midnight <= end:
                    first = start // MICROS_PER_DAY
                    moved = True
                    break
            if moved:
                break
    return first


def _checkpoint(rows: list[dict], current: dict | None, first: int) -> State | None:
    """State at the end of the last activity day before ``first`` (rows of one role)."""
    before = [r for r in rows if r["score_date"] < first]
    if before:
        return state_from_row(max(before, key=lambda r: r["score_date"]))
    after = [r for r in rows if r["score_date"] >= first]
    if after:
        return prev_state_from_row(min(after, key=lambda r: r["score_date"]))
    if current is not None and current["score_date"] < first:
        return state_from_row(current)
    return None


def score_person(person_id: str, touchpoints: Iterable[tuple[int, dict]], identity_from: Iterable[int],
                 daily_rows: Iterable[dict], current_rows: Iterable[dict], model: ScoringModel,
                 settings: ExperienceSettings, logical_day: int, tools: _Tools | None = None) -> PersonResult:
    """Recompute one person from their first changed day (see the module doc).

    ``touchpoints``: (1 if it came in this run else 0, touchpoint) for the person's touchpoints in
    the read window, one per event_id; ``identity_from``: identity's from_dates for the person."""
    tools = tools or _Tools(model)
    result = PersonResult()
    counters = result.counters
    identity = list(identity_from)
    touchpoints = list(touchpoints)
    if identity and min(identity) == RETIRED:
        result.scope = {"person_id": person_id, "from_date": RETIRED}
        counters["retired"] = 1
        if touchpoints:
            counters["retired_with_touchpoints"] = len(touchpoints)
        return result
    daily_rows = list(daily_rows)
    current_rows = list(current_rows)
    # A person with stored scores can be recomputed from the earliest recomputable day on; one
    # never scored has nothing stored to agree with: this run holds all of their touchpoints.
    known = bool(daily_rows or current_rows)
    earliest = settings.earliest_day(logical_day) if known else None
    steps: dict[str, list[Step]] = defaultdict(list)
    changed: dict[str, int] = {}
    for is_run, tp in touchpoints:
        role = tp["role"]
        steps[role].append(tools.classifier.step(tp))
        if is_run:
            changed[role] = min(changed.get(role, tp["event_time"]), tp["event_time"])
            if earliest is not None and tp["event_date"] < earliest:
                counters["late_beyond_lookback"] = counters.get("late_beyond_lookback", 0) + 1
    if not changed and not identity:
        return result
    for role_steps in steps.values():
        role_steps.sort()
    journeys = {role: analyze(s, model, settings.gap_micros, tools.rules) for role, s in steps.items()}
    first = first_changed_day(journeys, steps, changed, min(identity) if identity else None)
    if earliest is not None and first < earliest:
        first = earliest
        counters["clamped_scope"] = 1
    counters["persons"] = 1

    by_role: dict[str, list[dict]] = defaultdict(list)
    for row in daily_rows:
        by_role[row["role"]].append(row)
    current_of = {row["role"]: row for row in current_rows}
    roles = sorted((set(steps) | set(by_role) | set(current_of)) - {ALL_ROLES})
    checkpoints = {role: _checkpoint(by_role.get(role, []), current_of.get(role), first) for role in roles}

    new_latest: dict[str, dict] = {}
    timelines: dict[str, list[State]] = {}
    for role in roles:
        role_steps = steps.get(role, [])
        cp = checkpoints[role]
        timelines[role] = [cp] if cp is not None else []
        if not role_steps:
            continue
        for j in journeys[role]:
            if role_steps[j.start].time // MICROS_PER_DAY >= first:
                result.journeys.append(journey_row(person_id, role, role_steps, j, model, tools.weights))
        flags = [f for j in journeys[role] for f in j.flags]
        prev = cp
        for state in fold(role_steps, flags, cp, first, model, tools.weights, tools.caps):
            row = daily_row(person_id, role, state, prev, model)
            result.daily.append(row)
            new_latest[role] = row
            timelines[role].append(state)
            prev = state
    days = sorted({s.score_date for role in roles for s in timelines[role] if s.score_date >= first})
    for day in days:
        states = {}
        for role in roles:
            eligible = [s for s in timelines[role] if s.score_date <= day]
            if eligible:
                states[role] = eligible[-1]
        row = combined_row(person_id, day, states, model)
        result.daily.append(row)
        new_latest[ALL_ROLES] = row

    # current rows: the latest row per role, new or kept (older than F), or rebuilt from a checkpoint
    old: dict[str, dict] = {}
    for row in [*daily_rows, *current_rows]:
        if row["score_date"] < first and (row["role"] not in old or row["score_date"] > old[row["role"]]["score_date"]):
            old[row["role"]] = row
    for role in [*roles, ALL_ROLES]:
        if role in new_latest:
            result.current.append(current_row(new_latest[role]))
        elif role in old:
            result.current.append(current_row(old[role]))
        elif role != ALL_ROLES and checkpoints.get(role) is not None:
            result.current.append(current_row(daily_row(person_id, role, checkpoints[role], None, model)))
        elif role == ALL_ROLES and any(checkpoints.values()):
            states = {r: s for r, s in checkpoints.items() if s is not None}
            result.current.append(current_row(combined_row(person_id, max(s.score_date for s in states.values()), states, model)))
    result.scope = {"person_id": person_id, "from_date": first}
    return result


# ------------------------------------------------------------------------------------ Beam stage
class _KeyByPerson(batches.BatchDoFn):
    """(bucket, packed touchpoints) -> (bucket of person_id, packed rows of those persons);
    unattributed ones (no person) are left out (counted when they are this run's). Stored
    touchpoints (``is_run`` 0) older than the read window are left out too."""

    def __init__(self, is_run: int, shuffle: Shuffle, window: int | None = None):
        self._is_run = is_run
        self._shuffle = shuffle
        self._window = window

    def setup(self):
        self._unattributed = Metrics.counter(METRICS, "unattributed")

    def _work(self, element):
        _key, blob = element
        table = unpack(blob)
        if self._window is not None:
            table = table.filter(pc.greater_equal(pc.cast(table.column("event_date"), pa.int32()), self._window))
        persons = table.column("person_id")
        missing = persons.null_count
        if missing:
            if self._is_run:
                self._unattributed.inc(missing)
            table = table.filter(pc.is_valid(persons))
        if table.num_rows:
            yield from self._shuffle.split(table, table.column("person_id").to_pylist())


def _scopes_by_person(pairs, shuffle: Shuffle):
    yield from shuffle.keyed((person, (person, day)) for person, day in pairs)


class _ScorePersons(batches.BatchDoFn):
    """(bucket of person, {touchpoints, [stored], [scope], [daily], [current]}) -> every output
    table's rows of the bucket's persons, as (file key, rows) on outputs named by table:
    :func:`score_person` called in a loop over the persons with something new."""

    def __init__(self, ctx: RunContext, model: ScoringModel, settings: ExperienceSettings):
        self._ctx = ctx
        self._model = model
        self._settings = settings

    def setup(self):
        self._tools = _Tools(self._model)
        # only what scoring reads of a touchpoint is converted to Python (most of a row: identifiers,
        # order, amount, source -- is not): a third of the stage's time on a daily run
        self._fields = {"person_id", "role", "event_date", *self._tools.classifier.fields(TOUCHPOINT_SPEC.columns)}
        self._redactor = Redactor(Hasher(resolve_key(self._ctx.hash_key_source)))
        self._counters: dict[str, Any] = {}

    def _count(self, name: str, n: int) -> None:
        if name not in self._counters:
            self._counters[name] = Metrics.counter(METRICS, name)
        self._counters[name].inc(n)

    def _work(self, element):
        key, groups = element
        touchpoints: dict[str, list] = defaultdict(list)
        for is_run, name in ((1, "touchpoints"), (0, "stored")):
            for table in groups.get(name, ()):
                for tp in batches.datum_rows(table, TOUCHPOINT_SPEC, self._fields):
                    touchpoints[tp["person_id"]].append((is_run, tp))
        scopes: dict[str, list] = defaultdict(list)
        for records in groups.get("scope", ()):
            for person, day in records:
                scopes[person].append(day)
        stored: dict[str, dict[str, list]] = {}
        for name, spec in (("daily", DAILY_SPEC), ("current", CURRENT_SPEC)):
            rows: dict[str, list] = defaultdict(list)
            for table in groups.get(name, ()):
                for row in batches.datum_rows(table, spec):
                    rows[row["person_id"]].append(row)
            stored[name] = rows
        out: dict[str, list] = {JOURNEYS: [], DAILY: [], CURRENT: [], SCOPE: [], DEAD_LETTERS: []}
        counts: dict[str, int] = defaultdict(int)
        changed = {person for person, tps in touchpoints.items() if any(is_run for is_run, _ in tps)} | set(scopes)
        for person_id in sorted(changed):
            tps = touchpoints.get(person_id, [])
            try:
                result = score_person(person_id, tps, scopes.get(person_id, ()), stored["daily"].get(person_id, ()),
                                      stored["current"].get(person_id, ()), self._model, self._settings, self._ctx.logical_day,
                                      self._tools)
            except Exception as exc:  # noqa: BLE001 -- a person that cannot be scored keeps their rows; the error is data
                counts["dead_letter.unexpected_error"] += 1
                payload = {"person_id": person_id, "touchpoints": len(tps),
                           "event_ids": sorted(tp["event_id"] for _, tp in tps)[:20]}
                out[DEAD_LETTERS].append(dead_letter(
                    run_id=self._ctx.run_id, logical_date=self._ctx.logical_day, channel="experience",
                    source=f"person:{person_id}", failed_step="ScorePersons", reason="unexpected_error",
                    payload=json.dumps(payload, sort_keys=True), redactor=self._redactor, exc=exc))
                continue
            for name, n in result.counters.items():
                counts[name] += n
            out[JOURNEYS].extend(result.journeys)
            out[DAILY].extend(result.daily)
            out[CURRENT].extend(result.current)
            if result.scope is not None:
                out[SCOPE].append(result.scope)
        for name, n in counts.items():
            self._count(name, n)
        for table, rows in out.items():
            if rows:
                yield beam.pvalue.TaggedOutput(table, (f"score-{key:05d}", rows))


def survey_stats(table: pa.Table) -> dict[tuple, tuple]:
    """Summed survey counters per (event_date, role, channel) of a touchpoint table's valid answers."""
    answered = table.filter(pc.is_valid(table.column("survey_kind")))
    if not answered.num_rows:
        return {}
    cols = batches.datum_columns(answered, TOUCHPOINT_SPEC, ("event_date", "role", "channel", "survey_kind", "survey_score"))
    return partial_stats(dict(zip(cols, values)) for values in zip(*cols.values()))


def _survey_stats(element, window: int | None = None):
    _key, blob = element
    table = unpack(blob)
    if window is not None:
        table = table.filter(pc.greater_equal(pc.cast(table.column("event_date"), pa.int32()), window))
    yield from survey_stats(table).items()


def _recomputable_days(day, blocked, window):
    """Survey days a run can aggregate exactly: read in full (>= window), or nothing stored."""
    if day >= window or day not in set(blocked):
        yield day


def _on_days(element, days):
    if element[0][0] in set(days):
        yield element


def _survey_rows(rows):
    if rows:
        yield "surveys", rows


class ComputeExperience(beam.PTransform):
    """Journeys, daily and current scores and survey aggregates (see the module doc for the
    inputs and outputs). Touchpoints come as (bucket, packed table) batches from identity; stored
    score rows and survey days as Arrow tables; every output as (file key, rows)."""

    def __init__(self, ctx: RunContext, model: ScoringModel, settings: ExperienceSettings | None = None):
        super().__init__()
        self._ctx = ctx
        self._model = model
        self._settings = settings or ExperienceSettings()

    def expand(self, inputs):
        run = inputs["touchpoints"]
        p = run.pipeline
        ctx = self._ctx
        window = self._settings.window_start(ctx.logical_day, self._model)
        # This run's touchpoints are one per event_id (deduplicated; identity re-emits a stored one
        # only when this run does not have it) and always win over a stored version; the stored
        # ones come from identity without the events this run has (or re-attributed).
        keyed = {"touchpoints": run | "KeyByPerson" >> beam.ParDo(_KeyByPerson(1, ctx.shuffle))}
        answers = [run | "RunSurveyStats" >> beam.FlatMap(_survey_stats)]
        if "stored" in inputs:  # absent: nothing stored in the read window (a first run)
            keyed["stored"] = inputs["stored"] | "KeyStoredByPerson" >> beam.ParDo(_KeyByPerson(0, ctx.shuffle, window))
            answers.append(inputs["stored"] | "StoredSurveyStats" >> beam.FlatMap(_survey_stats, window))
        if "recompute_scope" in inputs:
            keyed["scope"] = inputs["recompute_scope"] | "KeyScopeByPerson" >> beam.FlatMap(_scopes_by_person, ctx.shuffle)
        # stored scores: absent when nothing is stored (a first run)
        if "history_daily" in inputs:
            keyed["daily"] = inputs["history_daily"] | "KeyDailyByPerson" >> beam.ParDo(KeyTable("person_id", ctx.shuffle))
        if "history_current" in inputs:
            keyed["current"] = inputs["history_current"] | "KeyCurrentByPerson" >> beam.ParDo(KeyTable("person_id", ctx.shuffle))
        scored = (
            keyed
            | "GroupByPerson" >> CoGroupByBucket()
            | "ScorePersons" >> beam.ParDo(_ScorePersons(ctx, self._model, self._settings)).with_outputs(
                JOURNEYS, DAILY, CURRENT, SCOPE, DEAD_LETTERS)
        )
        stored = inputs.get("history_survey_days")
        if stored is None:
            stored = p | "NoStoredSurveyDays" >> beam.Create([])
        blocked = stored | "BlockedDays" >> beam.FlatMap(
            lambda table: pc.cast(table.column("survey_date"), pa.int32()).to_pylist())
        days = (
            answers[0]
            | "SurveyDays" >> beam.Map(lambda kv: kv[0][0])
            | "DistinctSurveyDays" >> beam.Distinct()
            | "RecomputableDays" >> beam.FlatMap(_recomputable_days, beam.pvalue.AsList(blocked), window)
        )
        # partial sums per bucket and (day, role, channel) wait for the days (on the local runner
        # everything a side-input step reads is first materialized: they are few)
        surveys = (
            answers
            | "AllSurveyStats" >> beam.Flatten()
            | "SurveysOnThoseDays" >> beam.FlatMap(_on_days, beam.pvalue.AsList(days))
            | "AggregateSurveys" >> AggregateSurveys()
            | "AllSurveyRows" >> beam.combiners.ToList()
            | "SurveyRows" >> beam.FlatMap(_survey_rows)
        )
        return {
            JOURNEYS: scored[JOURNEYS],
            DAILY: scored[DAILY],
            CURRENT: scored[CURRENT],
            SURVEYS: surveys,
            SCOPE: scored[SCOPE],
            DEAD_LETTERS: scored[DEAD_LETTERS],
        }


def _date_literal(day: int) -> str:
    return f"DATE '{(dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()}'"


def state_filters(logical_date: dt.date, model: ScoringModel, settings: ExperienceSettings) -> dict[str, tuple[str, str]]:
    """{input name: (table, where)} of the previous state a run reads."""
    logical_day = (logical_date - dt.date(1970, 1, 1)).days
    earliest = settings.earliest_day(logical_day)
    window = settings.window_start(logical_day, model)
    return {
        "history_daily": (DAILY, f"score_date >= {_date_literal(earliest)}"),
        "history_current": (CURRENT, f"score_date < {_date_literal(earliest)}"),
        "history_survey_days": (SURVEYS, f"survey_date < {_date_literal(window)}"),
    }


__all__ = ["ComputeExperience", "ExperienceSettings", "state_filters", "score_person", "survey_stats", "TABLES",
           "first_changed_day", "PersonResult"]
