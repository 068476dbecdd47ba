"""The combined human-experience view: one score per person and day across their roles (role ``all``).

Roles are scored separately; adding them up would let a busy role drown out a painful one (a
driver with many smooth trips and a payout that is always late) and would make a person with more
roles look better or worse just for having them. The combined score is instead

    mean  = sum_r w_r * score_r / sum_r w_r       w_r = the role's decayed activity on the day
    score = min(mean, weakest + combined.max_gap)

where ``weakest`` is the lowest score among roles with at least ``combined.min_weight`` recent
activity (all roles if none has): the mean says where the person spends their time; the cap makes
sure one bad role is never averaged away. Each role's score is its own score carried (decayed) to
the day, observed while its survey answer is fresh. The row lists every role's score and weight
(``role_scores``) and the weakest role's top drivers as ``role/signal``.
"""

from __future__ import annotations

from typing import Any, Mapping

from .cumulative import State, decay_factor, day_end, decayed_to
from .daily import observed_at, top_drivers
from .model import ALL_ROLES, ScoringModel


def role_view(state: State, day: int, model: ScoringModel) -> dict[str, Any]:
    """A role's score, inferred score and weight at the end of ``day`` (>= its state's day)."""
    raw, weight = decayed_to(state, day, model.half_life_micros)
    inferred = model.curve(raw)
    observed = observed_at(state, day, model)
    return {"score": observed if observed is not None else inferred, "inferred": inferred,
            "observed": observed is not None, "weight": weight, "raw": raw}


def _combine(views: Mapping[str, dict[str, Any]], key: str, model: ScoringModel) -> tuple[float, str]:
    """(combined value of ``views[r][key]``, weakest role)."""
    total = sum(v["weight"] for v in views.values())
    if total > 0:
        mean = sum(v["weight"] * v[key] for v in views.values()) / total
    else:
        mean = sum(v[key] for v in views.values()) / len(views)
    values = [v[key] for v in views.values()]
    mean = min(max(mean, min(values)), max(values))  # no float drift outside the roles' own range (e.g. 100.00000000000001)
    eligible = {r: v for r, v in views.items() if v["weight"] >= model.combined_min_weight} or dict(views)
    weakest = min(sorted(eligible), key=lambda r: eligible[r][key])
    return min(mean, eligible[weakest][key] + model.combined_max_gap), weakest


def combined_row(person_id: str, day: int, states: Mapping[str, State], model: ScoringModel) -> dict[str, Any]:
    """The ``role = all`` daily row of a person on ``day`` from each role's latest state (<= day)."""
    views = {role: role_view(state, day, model) for role, state in sorted(states.items())}
    score, weakest = _combine(views, "score", model)
    inferred, _ = _combine(views, "inferred", model)
    all_observed = all(v["observed"] for v in views.values())
    today = [s for s in states.values() if s.score_date == day]
    surveyed = [s for s in states.values() if s.survey_at is not None]
    latest = max(surveyed, key=lambda s: (s.survey_at, s.survey_score)) if surveyed else None
    weak_state = states[weakest]
    factor = decay_factor(day_end(day) - day_end(weak_state.score_date), model.half_life_micros)
    return {
        "person_id": person_id,
        "role": ALL_ROLES,
        "score_date": day,
        "score": score,
        "score_source": "observed" if all_observed else "inferred",
        "inferred_score": inferred,
        "observed_score": score if all_observed else None,
        "raw_score": None,
        "top_drivers": top_drivers(((k, v * factor) for k, v in weak_state.components), model.top_drivers, f"{weakest}/"),
        "role_scores": [{"role": r, "score": v["score"], "weight": v["weight"]} for r, v in views.items()],
        "components": [],
        "activity": sum(v["weight"] for v in views.values()),
        "touchpoints": sum(s.touchpoints for s in today),
        "day_delta": sum(s.day_delta for s in today),
        "capped": sum(s.capped for s in today),
        "last_survey_at": latest.survey_at if latest else None,
        "last_survey_kind": latest.survey_kind if latest else None,
        "last_survey_score": latest.survey_score if latest else None,
        "prev_state": None,
        "model_version": model.model_version,
    }
