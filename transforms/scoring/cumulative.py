"""Decay arithmetic of the cumulative score, as pure functions in incremental form.

The raw score of a person in a role is ``S(t) = sum_i w_i * 2^(-(t - t_i) / H)`` over the counted
contributions ``w_i`` at times ``t_i <= t`` (H = the model's half-life). It never needs the whole
history: from a checkpoint ``S(t1)``,

    S(t2) = S(t1) * 2^(-(t2 - t1) / H) + sum of w_i * 2^(-(t2 - t_i) / H) for t1 < t_i <= t2

which is what both the daily batch fold (:func:`next_state`, one step per day with activity,
anchored at the end of the day) and a streaming update per event (:func:`add`, issue 6) compute.
The state keeps S split by signal (``components``, sorted by name; S is their sum) so the top
drivers of a score are exact at any time, plus decayed activity and the latest survey answer.

Batch recompute and incremental runs agree *exactly* (same floating-point operations in the same
order) because every day starts from the stored state of the previous activity day; a streaming
update anchored at event times agrees to rounding (~1e-15 relative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

MICROS_PER_DAY = 86_400_000_000
#: Components whose magnitude decays below this are dropped (identically in every run).
NEGLIGIBLE = 1e-12


def decay_factor(elapsed_micros: float, half_life_micros: float) -> float:
    """2^(-elapsed / H): 0.5 after one half-life, 1 for no time."""
    return 2.0 ** (-elapsed_micros / half_life_micros)


def decay(value: float, elapsed_micros: float, half_life_micros: float) -> float:
    """A score ``elapsed_micros`` later with nothing added: w -> w/2 after one half-life."""
    return value * decay_factor(elapsed_micros, half_life_micros)


def add(score: float, t1: int, t2: int, weight: float, half_life_micros: float) -> float:
    """S(t2) = S(t1) * 2^(-(t2 - t1) / H) + w: one contribution ``weight`` at time ``t2 >= t1``."""
    return decay(score, t2 - t1, half_life_micros) + weight


def day_end(day: int) -> int:
    """The anchor of a day's state: midnight (UTC) after ``day`` (days since the epoch), in micros."""
    return (day + 1) * MICROS_PER_DAY


@dataclass(frozen=True)
class State:
    """A person's score state in one role at the end of ``score_date`` (a day with activity)."""

    score_date: int
    components: tuple[tuple[str, float], ...]  # (signal, decayed weighted sum), sorted by signal
    activity: float  # decayed count of touchpoints
    touchpoints: int  # on score_date
    day_delta: float  # sum of score_date's counted contributions (undecayed)
    capped: int  # occurrences of score_date not counted (daily caps)
    survey_at: int | None = None  # the latest survey answer so far
    survey_kind: str | None = None
    survey_score: float | None = None  # on the 0-100 scale

    @property
    def raw(self) -> float:
        """S at the end of score_date (the sum of the components)."""
        return math.fsum(v for _, v in self.components)


def next_state(prev: State | None, day: int, counted: Iterable[tuple[int, str, float]], touch_times: Iterable[int],
               capped: int, survey: tuple[int, str, float] | None, half_life_micros: float) -> State:
    """The state at the end of ``day`` from the previous activity day's state.

    ``counted``: the day's counted contributions ``(time, signal, weight * value)`` in time order;
    ``touch_times``: the times of the day's touchpoints; ``survey``: the day's latest answer
    ``(time, kind, observed)`` if any."""
    anchor = day_end(day)
    components: dict[str, float] = {}
    activity = 0.0
    survey_at = survey_kind = survey_score = None
    if prev is not None:
        if day <= prev.score_date:
            raise ValueError(f"day {day} does not follow the state of day {prev.score_date}")
        factor = decay_factor(anchor - day_end(prev.score_date), half_life_micros)
        components = {name: value * factor for name, value in prev.components}
        activity = prev.activity * factor
        survey_at, survey_kind, survey_score = prev.survey_at, prev.survey_kind, prev.survey_score
    delta = 0.0
    for time, name, weighted in counted:
        components[name] = components.get(name, 0.0) + weighted * decay_factor(anchor - time, half_life_micros)
        delta += weighted
    n = 0
    for time in touch_times:
        activity += decay_factor(anchor - time, half_life_micros)
        n += 1
    if survey is not None and (survey_at is None or survey[0] >= survey_at):
        survey_at, survey_kind, survey_score = survey
    kept = tuple(sorted((k, v) for k, v in components.items() if abs(v) >= NEGLIGIBLE))
    return State(day, kept, activity, n, delta, capped, survey_at, survey_kind, survey_score)


def decayed_to(state: State, day: int, half_life_micros: float) -> tuple[float, float]:
    """(raw score, activity) of a state carried forward to the end of a later ``day``."""
    factor = decay_factor(day_end(day) - day_end(state.score_date), half_life_micros)
    return state.raw * factor, state.activity * factor
