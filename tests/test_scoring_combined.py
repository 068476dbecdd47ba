"""The combined human-experience view across roles (role = all): not a sum."""

from __future__ import annotations

import pytest

from touchline.transforms.scoring.combined import combined_row, role_view
from touchline.transforms.scoring.cumulative import State
from touchline.transforms.scoring.model import load_model

MODEL = load_model()
DAY = 20_400


def state(raw: float, activity: float, day: int = DAY) -> State:
    return State(day, (("x", raw),), activity, 3, raw, 0)


def test_single_role_is_its_own_score():
    row = combined_row("p", DAY, {"customer": state(1.0, 5.0)}, MODEL)
    assert row["role"] == "all" and row["score"] == pytest.approx(MODEL.curve(1.0))
    assert row["role_scores"] == [{"role": "customer", "score": row["score"], "weight": 5.0}]


def test_activity_weighted_mean_capped_by_the_weakest_active_role():
    good, bad = state(4.0, 30.0), state(-4.0, 2.0)
    row = combined_row("p", DAY, {"customer": good, "employee": bad}, MODEL)
    s_good, s_bad = MODEL.curve(4.0), MODEL.curve(-4.0)
    mean = (30 * s_good + 2 * s_bad) / 32
    assert mean > s_bad + MODEL.combined_max_gap  # the busy good role would drown the bad one ...
    assert row["score"] == pytest.approx(s_bad + MODEL.combined_max_gap)  # ... the cap does not let it
    assert row["top_drivers"][0]["signal"] == "employee/x"
    assert row["score"] < s_good + s_bad  # and it is nothing like a sum


def test_a_role_inactive_for_long_fades_out_of_the_cap():
    old_bad = state(-4.0, 2.0, DAY - 60)  # weight 2 * 2^(-60/7) ~ 0.005 < min_weight
    row = combined_row("p", DAY, {"customer": state(2.0, 10.0), "partner": old_bad}, MODEL)
    view = role_view(old_bad, DAY, MODEL)
    assert view["weight"] < MODEL.combined_min_weight
    assert row["score"] == pytest.approx((10 * MODEL.curve(2.0) + view["weight"] * view["score"]) / (10 + view["weight"]))
