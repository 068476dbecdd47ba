"""Per person x role x day: counted contributions (daily caps), the day-by-day fold, and rows.

Contributions are the touchpoints' signals (weight x value) plus the journeys' friction flags
(weight), each at the time it happened. Per UTC day, only the first ``daily_cap`` occurrences of a
signal (or flag) count, in time order -- so a burst of page views cannot outweigh a failed
payment, and capping never depends on what happens later in the day. Days with activity fold into
:class:`~.cumulative.State` s; each state becomes one ``person_scores_daily`` row:

* ``inferred_score`` = the model's curve of the raw score S;
* ``score`` = the latest survey answer (0-100) while it is fresh (``surveys.validity_days`` before
  the end of the day), ``score_source`` = observed; otherwise the inferred score, inferred;
* ``top_drivers`` = the signals with the largest absolute share of S;
* ``prev_state`` = the state the day started from, so any day can be a recompute's checkpoint.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, NamedTuple, Sequence

from ...schemas.rows import to_micros
from .cumulative import MICROS_PER_DAY, State, day_end, next_state
from .model import ScoringModel

#: person_scores_current.valid_to: the conventional "current row" date.
VALID_TO = 2932896  # 9999-12-31 in days since the epoch

# order of contributions at the same instant: the touchpoint's own signal, then flags it raised
SIGNAL, FLAG = 0, 1


class Contribution(NamedTuple):
    time: int
    event_id: str
    order: int  # SIGNAL or FLAG
    name: str
    value: float  # 1, a survey value, ...; the weight is applied when counted


def contributions(steps: Iterable, flags: Iterable) -> list[Contribution]:
    """Contributions of steps (with a signal) and friction flags, time-ordered."""
    out = [Contribution(s.time, s.event_id, SIGNAL, s.signal, s.value) for s in steps if s.signal is not None]
    out += [Contribution(f.time, f.event_id, FLAG, f.name, 1.0) for f in flags]
    out.sort()
    return out


def count_day(day_contributions: Sequence[Contribution], weights: dict[str, float], caps: dict[str, int]
              ) -> tuple[list[tuple[int, str, float]], int]:
    """(counted ``(time, name, weight * value)``, number capped) for one day's contributions."""
    seen: dict[str, int] = defaultdict(int)
    counted = []
    capped = 0
    for c in day_contributions:
        seen[c.name] += 1
        if seen[c.name] > caps.get(c.name, 1):
            capped += 1
            continue
        counted.append((c.time, c.name, weights.get(c.name, 0.0) * c.value))
    return counted, capped


def fold(steps: Sequence, flags: Iterable, checkpoint: State | None, from_day: int, model: ScoringModel,
         weights: dict[str, float] | None = None, caps: dict[str, int] | None = None) -> list[State]:
    """States of every day >= ``from_day`` with activity, continuing from ``checkpoint`` (the
    state of the last activity day before ``from_day``, or None)."""
    weights = weights if weights is not None else model.weights()
    caps = caps if caps is not None else model.daily_caps()
    start = from_day * MICROS_PER_DAY
    by_day: dict[int, list] = defaultdict(list)
    for c in contributions((s for s in steps if s.time >= start), (f for f in flags if f.time >= start)):
        by_day[c.time // MICROS_PER_DAY].append(c)
    touches: dict[int, list[int]] = defaultdict(list)
    surveys: dict[int, tuple[int, str, float]] = {}
    for s in steps:
        if s.time < start:
            continue
        day = s.time // MICROS_PER_DAY
        touches[day].append(s.time)
        if s.observed is not None:
            surveys[day] = (s.time, s.survey_kind, s.observed)  # steps are time-ordered: the latest wins
    states = []
    state = checkpoint
    for day in sorted(touches):
        counted, capped = count_day(by_day.get(day, ()), weights, caps)
        state = next_state(state, day, counted, touches[day], capped, surveys.get(day), model.half_life_micros)
        states.append(state)
    return states


# ---------------------------------------------------------------------------------------- rows
def observed_at(state: State, day: int, model: ScoringModel) -> float | None:
    """The survey score if the latest answer is still valid at the end of ``day``."""
    if state.survey_at is None:
        return None
    if state.survey_at >= day_end(day) - model.survey_validity_days * MICROS_PER_DAY:
        return state.survey_score
    return None


def top_drivers(components: Iterable[tuple[str, float]], n: int, prefix: str = "") -> list[dict[str, Any]]:
    """The ``n`` signals that explain the raw score best: those pulling in its direction (the
    most negative ones for a score below neutral, S < 0), by size, then the others."""
    components = list(components)
    raw = math.fsum(v for _, v in components)
    ranked = sorted(components, key=lambda kv: (0 if kv[1] * raw > 0 else 1, -abs(kv[1]), kv[0]))[:n]
    return [{"signal": prefix + name, "contribution": value} for name, value in ranked]


def _state_fields(state: State) -> dict[str, Any]:
    return {
        "components": [{"signal": k, "value": v} for k, v in state.components],
        "activity": state.activity,
        "touchpoints": state.touchpoints,
        "day_delta": state.day_delta,
        "capped": state.capped,
        "last_survey_at": state.survey_at,
        "last_survey_kind": state.survey_kind,
        "last_survey_score": state.survey_score,
    }


def daily_row(person_id: str, role: str, state: State, prev: State | None, model: ScoringModel) -> dict[str, Any]:
    """The ``person_scores_daily`` row of a state (``prev``: the state the day started from)."""
    raw = state.raw
    inferred = model.curve(raw)
    observed = observed_at(state, state.score_date, model)
    row = {
        "person_id": person_id,
        "role": role,
        "score_date": state.score_date,
        "score": observed if observed is not None else inferred,
        "score_source": "observed" if observed is not None else "inferred",
        "inferred_score": inferred,
        "observed_score": observed,
        "raw_score": raw,
        "top_drivers": top_drivers(state.components, model.top_drivers),
        "role_scores": [],
        **_state_fields(state),
        "prev_state": None if prev is None else {"score_date": prev.score_date, **_state_fields(prev)},
        "model_version": model.model_version,
    }
    return row


def _state(d: dict[str, Any], score_date: int) -> State:
    return State(
        score_date=score_date,
        components=tuple((c["signal"], float(c["value"])) for c in d.get("components") or ()),
        activity=float(d["activity"]),
        touchpoints=int(d["touchpoints"]),
        day_delta=float(d["day_delta"]),
        capped=int(d["capped"]),
        survey_at=to_micros(d.get("last_survey_at")),
        survey_kind=d.get("last_survey_kind"),
        survey_score=None if d.get("last_survey_score") is None else float(d["last_survey_score"]),
    )


def state_from_row(row: dict[str, Any]) -> State:
    """The end-of-day state stored in a daily (or current) row."""
    return _state(row, row["score_date"])


def prev_state_from_row(row: dict[str, Any]) -> State | None:
    """The state a daily row started from (None if it was the first)."""
    prev = row.get("prev_state")
    return None if prev is None else _state(prev, prev["score_date"])


def current_row(daily: dict[str, Any]) -> dict[str, Any]:
    """A ``person_scores_current`` row from a daily row."""
    row = {k: v for k, v in daily.items() if k != "prev_state"}
    row["valid_to"] = VALID_TO
    return row
