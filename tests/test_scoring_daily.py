"""Per person x role x day: daily caps, the fold, survey override window, rows and checkpoints."""

from __future__ import annotations

import pytest

from tests.experience_harness import at, touchpoint
from touchline.transforms.scoring.cumulative import MICROS_PER_DAY
from touchline.transforms.scoring.daily import (VALID_TO, Contribution, count_day, current_row, daily_row, fold,
                                                prev_state_from_row, state_from_row)
from touchline.transforms.scoring.model import load_model
from touchline.transforms.scoring.signals import Classifier

MODEL = load_model()


def steps_of(*tps):
    return Classifier(MODEL).steps(tps)


def test_only_the_first_daily_cap_occurrences_count():
    day = [Contribution(i, f"e{i}", 0, "engagement", 1.0) for i in range(25)]
    day.append(Contribution(30, "c", 0, "app_crash", 1.0))
    counted, capped = count_day(day, MODEL.weights(), MODEL.daily_caps())
    assert capped == 15 and len(counted) == 11  # engagement is capped at 10 a day
    assert [t for t, name, _ in counted if name == "engagement"] == list(range(10))
    assert sum(w for *_, w in counted) == pytest.approx(10 * 0.05 - 1.0)


def test_fold_gives_one_state_per_active_day_and_continues_from_a_checkpoint():
    tps = [touchpoint(f"v{d}", f"2026-10-0{d} 12:00", "web", "page_view") for d in (1, 2, 5)]
    tps.append(touchpoint("x", "2026-10-05 13:00", "app", "app_crash"))
    steps = steps_of(*tps)
    states = fold(steps, [], None, 0, MODEL)
    assert [s.score_date for s in states] == [steps[0].time // MICROS_PER_DAY + k for k in (0, 1, 4)]
    # resuming from the state of day 2 reproduces day 5 exactly
    resumed = fold(steps, [], states[1], states[2].score_date, MODEL)
    assert resumed == [states[2]]
    assert dict(states[2].components)["app_crash"] < 0 < dict(states[2].components)["engagement"]


def test_fresh_survey_answer_overrides_the_inferred_score_within_its_validity_window():
    tps = [touchpoint("s", "2026-10-01 09:00", "app", "survey_response", survey=("nps", 2))]
    tps += [touchpoint(f"v{d}", f"2026-10-{d:02d} 12:00", "web", "page_view") for d in (1, 10, 15, 16, 20)]
    steps = steps_of(*tps)
    rows = []
    prev = None
    for state in fold(steps, [], None, 0, MODEL):
        rows.append(daily_row("p1", "customer", state, prev, MODEL))
        prev = state
    by_day = {r["score_date"] - rows[0]["score_date"] + 1: r for r in rows}
    # answered on Oct 1 (NPS 2 -> 20); valid for 14 days: through the end of Oct 14
    assert by_day[1]["score_source"] == "observed" and by_day[1]["score"] == 20.0
    assert by_day[10]["score_source"] == "observed" and by_day[10]["observed_score"] == 20.0
    for day in (15, 16, 20):
        assert by_day[day]["score_source"] == "inferred" and by_day[day]["observed_score"] is None
        assert by_day[day]["score"] == by_day[day]["inferred_score"]
        assert by_day[day]["last_survey_score"] == 20.0  # remembered, no longer in force
    # the answer still informs the inferred score (survey_answer signal), less as it decays
    assert by_day[1]["inferred_score"] < by_day[10]["inferred_score"] < by_day[20]["inferred_score"]
    assert all(r["model_version"] == "default-1" for r in rows)


def test_rows_carry_drivers_and_round_trip_their_state():
    tps = [touchpoint("d", "2026-10-03 10:00", "transactions", "payment_declined"),
           touchpoint("v", "2026-10-03 11:00", "web", "page_view"),
           touchpoint("c", "2026-10-04 08:00", "app", "app_crash")]
    states = fold(steps_of(*tps), [], None, 0, MODEL)
    row = daily_row("p1", "customer", states[1], states[0], MODEL)
    assert [d["signal"] for d in row["top_drivers"]] == ["payment_declined", "app_crash", "engagement"]
    assert row["raw_score"] == pytest.approx(sum(c["value"] for c in row["components"]))
    assert state_from_row(row) == states[1] and prev_state_from_row(row) == states[0]
    assert prev_state_from_row(daily_row("p1", "customer", states[0], None, MODEL)) is None
    cur = current_row(row)
    assert cur["valid_to"] == VALID_TO and "prev_state" not in cur
    assert at("9999-12-31 00:00") // MICROS_PER_DAY == VALID_TO
