"""Touchpoint -> signal: which model signal (if any) a touchpoint is, as a compact ``Step``.

A touchpoint with a valid survey answer is the signal ``survey_answer`` with value
``(observed - 50) / 50`` (-1..1); any other touchpoint is the first signal of the model whose
``match`` fits its channel, event_type and attributes (value 1), or no signal at all. Steps are what
journeys and scores are computed from: small, picklable, ordered by ``(time, event_id)``.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple

from .model import SURVEY_SIGNAL, ScoringModel, SignalSpec
from .plugins import SignalPlugin, build
from .surveys import observed_score


class Step(NamedTuple):
    time: int  # event_time, microseconds since the epoch (UTC)
    event_id: str
    channel: str
    event_type: str
    signal: str | None
    value: float  # 1.0, or the survey answer's (observed - 50) / 50
    ticket_id: str | None
    survey_kind: str | None
    observed: float | None  # the survey answer on the 0-100 scale


#: The touchpoint fields :meth:`Classifier.step` reads (a model with signal plug-ins reads them all:
#: a plug-in sees the whole touchpoint).
STEP_FIELDS = ("event_id", "channel", "event_type", "event_time", "attributes", "ticket_id", "survey_kind",
               "survey_score")


class Classifier:
    """Matches touchpoints to a model's signals; build one per worker (it caches per event type and
    builds the model's signal plug-ins)."""

    def __init__(self, model: ScoringModel):
        self._signals = model.signals
        self._candidates: dict[str, tuple[SignalSpec, ...]] = {}
        self._plugins: dict[str, SignalPlugin] = {s.name: build(s.plugin, dict(s.params)) for s in model.signals if s.plugin}

    def fields(self, columns: Iterable[str]) -> tuple[str, ...]:
        """Of a touchpoint's ``columns``, those :meth:`step` needs: :data:`STEP_FIELDS`, or every
        column when the model has signal plug-ins."""
        return tuple(c for c in columns if self._plugins or c in STEP_FIELDS)

    def _for_type(self, event_type: str) -> tuple[SignalSpec, ...]:
        found = self._candidates.get(event_type)
        if found is None:
            found = tuple(s for s in self._signals
                          if any(m.event_types is None or event_type in m.event_types for m in s.matchers))
            self._candidates[event_type] = found
        return found

    def signal(self, channel: str, event_type: str, attributes: dict[str, str],
               touchpoint: dict[str, Any] | None = None) -> str | None:
        """The first signal of the model that fits (plug-in signals decide among their matches;
        they see ``touchpoint``, or the three fields given when there is none)."""
        for spec in self._for_type(event_type):
            for matcher in spec.matchers:
                if matcher.matches(channel, event_type, attributes):
                    plugin = self._plugins.get(spec.name) if self._plugins else None
                    if plugin is None:
                        return spec.name
                    row = touchpoint if touchpoint is not None else {
                        "channel": channel, "event_type": event_type, "attributes": attributes}
                    if plugin.matches(row):
                        return spec.name
                    break
        return None

    def step(self, touchpoint: dict[str, Any]) -> Step:
        get = touchpoint.get
        kind = get("survey_kind")
        observed = None if kind is None else observed_score(kind, get("survey_score"))
        if observed is not None:
            signal, value = SURVEY_SIGNAL, (observed - 50.0) / 50.0
        else:
            kind = None
            signal = self.signal(touchpoint["channel"], touchpoint["event_type"], get("attributes") or {}, touchpoint)
            value = 1.0
        # positional, in field order: time, event_id, channel, event_type, signal, value, ticket_id,
        # survey_kind (of a valid answer only), observed
        return Step(touchpoint["event_time"], touchpoint["event_id"], touchpoint["channel"], touchpoint["event_type"],
                    signal, value, get("ticket_id"), kind, observed)

    def steps(self, touchpoints: Iterable[dict[str, Any]]) -> list[Step]:
        """Steps of touchpoints, time-ordered (ties by event_id)."""
        return sorted(self.step(tp) for tp in touchpoints)
