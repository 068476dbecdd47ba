"""Journeys: a person's time-ordered touchpoints in one role, split on inactivity, across channels.

A journey ends when the person is inactive (in that role) for longer than the journey gap
(``--journey_gap_hours``). Journeys never mix roles: a driver's trips and their own rides are
different experiences. Each journey records its channels, channel path and transitions, an
outcome and friction flags, all defined over the *signals* of the scoring model (so a plug-in
channel gets journeys and friction by adding signals to the model file):

* outcome -- set by the journey's last touchpoint whose signal is listed under ``outcomes``:
  converted, resolved, abandoned or failed; ``failed_if_last`` signals (a crash, a web error) fail
  the journey only when they are its very last touchpoint; otherwise ``engaged``.
* friction flags, each raised at most once per journey, at the touchpoint that raises it:

  ``channel_switch_after_failure``  a touchpoint on another channel (of ``to_channels``) within
                                    ``within_hours`` after a failure signal (web error -> support call)
  ``repeat_contact``                a contact with another contact in the previous ``within_days``
                                    (in any journey)
  ``slow_first_response``           a ticket's first response more than ``after_hours`` after it opened
  ``slow_resolution``               a ticket resolved or closed more than ``after_hours`` after it opened
  ``unresolved_at_end``             a ticket of the journey is still open, or closed unresolved, at the
                                    journey's last touchpoint (raised there)
  ``payment_decline`` / ``late_delivery`` / ``refund``   one of the listed signals occurred
  ``many_channels``                 the journey reached ``min_channels`` channels

Every rule looks back at most ``model.context_days`` (tickets are looked up among their steps of
the last ``tickets.memory_days``), and nothing but ``unresolved_at_end`` depends on touchpoints
after the one that raises it; that bound is what lets an incremental run recompute a person from
the start of the journey holding their earliest changed touchpoint and get the same result as a
full recompute.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import apache_beam as beam

from .scoring.model import ScoringModel
from .scoring.signals import Classifier, Step

MICROS_PER_HOUR = 3_600_000_000
MICROS_PER_DAY = 86_400_000_000
MAX_PATH = 50


class Flag(NamedTuple):
    name: str
    time: int
    event_id: str


@dataclass
class Journey:
    start: int  # index of the first step
    end: int  # index after the last step
    flags: list[Flag] = field(default_factory=list)
    outcome: str = "engaged"


def journey_id(person_id: str, first_event_id: str) -> str:
    return hashlib.blake2b(f"{person_id}\x00{first_event_id}".encode(), digest_size=16).hexdigest()


def sessionize(steps: Sequence[Step], gap_micros: int) -> list[tuple[int, int]]:
    """[start, end) index ranges of time-ordered steps, split where the gap exceeds ``gap_micros``."""
    bounds = []
    start = 0
    for i in range(1, len(steps)):
        if steps[i].time - steps[i - 1].time > gap_micros:
            bounds.append((start, i))
            start = i
    if steps:
        bounds.append((start, len(steps)))
    return bounds


class JourneyRules:
    """The model's journey rules, unpacked once."""

    def __init__(self, model: ScoringModel):
        self.failures = model.failure_signals
        spec = model.flag("channel_switch_after_failure")
        self.switch = None if spec is None else (spec.param("within_hours") * MICROS_PER_HOUR, frozenset(spec.param("to_channels")))
        spec = model.flag("repeat_contact")
        self.repeat = None if spec is None else (spec.param("within_days") * MICROS_PER_DAY, frozenset(spec.param("signals")))
        spec = model.flag("slow_first_response")
        self.slow_response = None if spec is None else spec.param("after_hours") * MICROS_PER_HOUR
        spec = model.flag("slow_resolution")
        self.slow_resolution = None if spec is None else spec.param("after_hours") * MICROS_PER_HOUR
        self.unresolved = model.flag("unresolved_at_end") is not None
        self.single = tuple((name, frozenset(model.flag(name).param("signals")))
                            for name in ("payment_decline", "late_delivery", "refund") if model.flag(name) is not None)
        spec = model.flag("many_channels")
        self.many = None if spec is None else spec.param("min_channels")
        self.opened = model.ticket_signals("opened")
        self.response = model.ticket_signals("response")
        self.resolved = model.ticket_signals("resolved")
        self.closed_unresolved = model.ticket_signals("closed_unresolved")
        self.ends = self.resolved | self.closed_unresolved
        self.ticket_steps = self.opened | self.response | self.ends | model.ticket_signals("reopened")
        self.memory = model.ticket_memory_days * MICROS_PER_DAY
        self.outcome_of = {name: outcome for outcome, names in model.outcomes for name in names}
        self.failed_if_last = model.failed_if_last


def _ticket_index(steps: Sequence[Step], rules: JourneyRules) -> dict[str, list[int]]:
    index: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(steps):
        if s.ticket_id and s.signal in rules.ticket_steps:
            index[s.ticket_id].append(i)
    return index


def _ticket_flags(steps: Sequence[Step], i: int, history: list[int], rules: JourneyRules) -> str | None:
    """Slow first response / slow resolution raised by ticket step ``i`` (looking back ``memory``)."""
    s = steps[i]
    earliest = s.time - rules.memory
    opened_at = None
    responded = False
    for j in history:
        if j >= i:
            break
        prev = steps[j]
        if prev.time < earliest:
            continue
        if prev.signal in rules.opened:
            opened_at, responded = prev.time, False
        elif prev.signal in rules.response:
            responded = True
    if opened_at is None:
        return None
    if s.signal in rules.response and not responded and rules.slow_response is not None and s.time - opened_at > rules.slow_response:
        return "slow_first_response"
    if s.signal in rules.ends and rules.slow_resolution is not None and s.time - opened_at > rules.slow_resolution:
        return "slow_resolution"
    return None


def _outcome(steps: Sequence[Step], start: int, end: int, rules: JourneyRules) -> str:
    if steps[end - 1].signal in rules.failed_if_last:
        return "failed"
    for i in range(end - 1, start - 1, -1):
        outcome = rules.outcome_of.get(steps[i].signal)
        if outcome is not None:
            return outcome
    return "engaged"


def analyze(steps: Sequence[Step], model: ScoringModel, gap_micros: int, rules: JourneyRules | None = None) -> list[Journey]:
    """Journeys of one person in one role (``steps`` time-ordered), with outcomes and flags."""
    rules = rules or JourneyRules(model)
    tickets = _ticket_index(steps, rules)
    contacts = [i for i, s in enumerate(steps) if rules.repeat is not None and s.signal in rules.repeat[1]]
    contact_pos = {i: k for k, i in enumerate(contacts)}
    journeys = []
    for start, end in sessionize(steps, gap_micros):
        raised: dict[str, Flag] = {}

        def flag(name: str, step: Step) -> None:
            if name not in raised:
                raised[name] = Flag(name, step.time, step.event_id)

        failures: list[tuple[int, str]] = []
        channels: list[str] = []
        touched: dict[str, int] = {}
        for i in range(start, end):
            s = steps[i]
            if s.channel not in channels:
                channels.append(s.channel)
                if rules.many is not None and len(channels) >= rules.many:
                    flag("many_channels", s)
            if rules.switch is not None and s.channel in rules.switch[1]:
                for failed_at, failed_on in failures:
                    if failed_on != s.channel and s.time - failed_at <= rules.switch[0]:
                        flag("channel_switch_after_failure", s)
                        break
            if s.signal in rules.failures:
                failures.append((s.time, s.channel))
            for name, names in rules.single:
                if s.signal in names:
                    flag(name, s)
            if i in contact_pos:
                k = contact_pos[i]
                if k > 0 and steps[contacts[k - 1]].time >= s.time - rules.repeat[0]:
                    flag("repeat_contact", s)
            if s.ticket_id and s.signal in rules.ticket_steps:
                touched[s.ticket_id] = i
                name = _ticket_flags(steps, i, tickets[s.ticket_id], rules)
                if name is not None:
                    flag(name, s)
        if rules.unresolved:
            for last in touched.values():
                if steps[last].signal in rules.closed_unresolved or steps[last].signal not in rules.ends:
                    flag("unresolved_at_end", steps[end - 1])
                    break
        flags = sorted(raised.values(), key=lambda f: (f.time, f.event_id, f.name))
        journeys.append(Journey(start, end, flags, _outcome(steps, start, end, rules)))
    return journeys


def journey_row(person_id: str, role: str, steps: Sequence[Step], journey: Journey, model: ScoringModel,
                weights: dict[str, float] | None = None) -> dict[str, Any]:
    """The ``journeys`` table row of one journey."""
    weights = weights if weights is not None else model.weights()
    part = steps[journey.start:journey.end]
    channels: list[str] = []
    path: list[str] = []
    transitions = 0
    for k, s in enumerate(part):
        if s.channel not in channels:
            channels.append(s.channel)
        if k and s.channel != part[k - 1].channel:
            transitions += 1
        if not path or path[-1] != s.channel:
            path.append(s.channel)
    first, last = part[0], part[-1]
    return {
        "journey_id": journey_id(person_id, first.event_id),
        "person_id": person_id,
        "role": role,
        "start_date": first.time // MICROS_PER_DAY,
        "start_time": first.time,
        "end_time": last.time,
        "touchpoints": len(part),
        "channels": channels,
        "channel_path": path[:MAX_PATH],
        "transitions": transitions,
        "outcome": journey.outcome,
        "friction_flags": sorted({f.name for f in journey.flags}),
        "friction": [{"flag": f.name, "flagged_at": f.time, "event_id": f.event_id} for f in journey.flags],
        "signal_weight": sum(weights.get(s.signal, 0.0) * s.value for s in part if s.signal is not None),
        "friction_weight": sum(weights.get(f.name, 0.0) for f in journey.flags),
        "first_event_id": first.event_id,
        "last_event_id": last.event_id,
        "model_version": model.model_version,
    }


class _JourneysOfPerson(beam.DoFn):
    def __init__(self, model: ScoringModel, gap_micros: int):
        self._model = model
        self._gap = gap_micros

    def setup(self):
        self._classifier = Classifier(self._model)
        self._rules = JourneyRules(self._model)
        self._weights = self._model.weights()

    def process(self, element):
        (person_id, role), touchpoints = element
        steps = self._classifier.steps(touchpoints)
        for journey in analyze(steps, self._model, self._gap, self._rules):
            yield journey_row(person_id, role, steps, journey, self._model, self._weights)


class BuildJourneys(beam.PTransform):
    """Attributed touchpoints (person_id set; distinct event_ids) -> ``journeys`` rows, every
    journey of every person from all the touchpoints given (a full recompute; the incremental
    path is :class:`touchline.transforms.experience.ComputeExperience`)."""

    def __init__(self, model: ScoringModel, gap_hours: float):
        super().__init__()
        self._model = model
        self._gap = int(gap_hours * MICROS_PER_HOUR)

    def expand(self, touchpoints):
        return (
            touchpoints
            | "Attributed" >> beam.Filter(lambda tp: tp.get("person_id") is not None)
            | "KeyByPersonRole" >> beam.Map(lambda tp: ((tp["person_id"], tp["role"]), tp))
            | "GroupByPersonRole" >> beam.GroupByKey()
            | "Journeys" >> beam.ParDo(_JourneysOfPerson(self._model, self._gap))
        )
