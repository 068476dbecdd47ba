"""Decay arithmetic: S(t) = sum w * 2^(-(t - t_i)/H), and its incremental form."""

from __future__ import annotations

import math
import random

import pytest

from touchline.transforms.scoring.cumulative import (MICROS_PER_DAY, State, add, day_end, decay, decay_factor,
                                                     decayed_to, next_state)

H = 7 * MICROS_PER_DAY


def test_a_weight_halves_after_one_half_life():
    assert decay(4.0, H, H) == 2.0
    assert decay(4.0, 2 * H, H) == 1.0
    assert decay(-1.5, 0, H) == -1.5
    assert decay_factor(H / 2, H) == pytest.approx(math.sqrt(0.5), rel=1e-15)


def test_incremental_form_equals_the_sum_over_history():
    rng = random.Random(3)
    events = sorted((rng.randrange(0, 60 * MICROS_PER_DAY), rng.uniform(-2, 1)) for _ in range(200))
    t_end = 61 * MICROS_PER_DAY
    direct = math.fsum(w * 2 ** (-(t_end - t) / H) for t, w in events)
    s, last = 0.0, 0
    for t, w in events:
        s = add(s, last, t, w, H)
        last = t
    s = decay(s, t_end - last, H)
    assert s == pytest.approx(direct, rel=1e-12, abs=1e-12)


def test_daily_states_anchor_at_midnight_and_carry_components():
    d = 20_000
    first = next_state(None, d, [(d * MICROS_PER_DAY + 3600_000_000, "app_crash", -1.0)],
                       [d * MICROS_PER_DAY + 3600_000_000], 0, None, H)
    assert first.score_date == d and first.touchpoints == 1 and first.day_delta == -1.0
    assert first.raw == pytest.approx(-1.0 * 2 ** (-(23 / 24) / 7))
    # seven days later, nothing new but one engagement: the crash has halved exactly
    later = next_state(first, d + 7, [(day_end(d + 7) - 1, "engagement", 0.05)], [day_end(d + 7) - 1], 0, None, H)
    crash = dict(later.components)["app_crash"]
    assert crash == dict(first.components)["app_crash"] / 2
    assert later.raw == pytest.approx(crash + 0.05, rel=1e-12)
    assert decayed_to(first, d + 7, H)[0] == pytest.approx(first.raw / 2)
    with pytest.raises(ValueError, match="does not follow"):
        next_state(later, d + 7, [], [], 0, None, H)


def test_latest_survey_answer_is_kept_in_the_state():
    d = 20_000
    t1, t2 = d * MICROS_PER_DAY + 1, d * MICROS_PER_DAY + 2
    s = next_state(None, d, [], [t1], 0, (t2, "nps", 90.0), H)
    s2 = next_state(s, d + 3, [], [day_end(d + 3) - 1], 0, None, H)
    assert (s2.survey_at, s2.survey_kind, s2.survey_score) == (t2, "nps", 90.0)
    assert isinstance(s2, State)
