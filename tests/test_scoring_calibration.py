"""Calibration: metrics arithmetic, the fit, and beating the default weights on held-out persons."""

from __future__ import annotations

import collections
import math

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import beam_pipeline
from tests.experience_harness import parsed_sample, touchpoint
from touchline.transforms.scoring.calibration import (Answer, RespondentFeatures, answer_features, auc, calibrate,
                                                      fit_logistic, held_out, person_answers, spearman)
from touchline.transforms.scoring.model import SURVEY_SIGNAL, load_model
from touchline.transforms.scoring.signals import Classifier

MODEL = load_model()
GAP = 12 * 3_600_000_000


def test_auc_and_spearman_arithmetic():
    assert auc([0.9, 0.8, 0.3, 0.1], [True, True, False, False]) == 1.0
    assert auc([0.1, 0.3, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auc([0.5, 0.5, 0.5, 0.5], [True, False, True, False]) == 0.5
    assert auc([3, 1, 2, 4], [True, False, False, True]) == 1.0
    assert auc([1, 2], [True, True]) != auc([1, 2], [True, True])  # nan: undefined without both classes
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)  # ties averaged


def test_features_are_the_decayed_signals_just_before_each_answer():
    tps = [touchpoint("c", "2026-10-01 10:00", "app", "app_crash"),
           touchpoint("a", "2026-10-08 10:00", "app", "survey_response", survey=("nps", 3)),
           touchpoint("b", "2026-10-08 10:00", "app", "app_crash"),  # same instant: not before the answer
           touchpoint("z", "2026-10-15 10:00", "app", "survey_response", survey=("nps", 8))]
    steps = Classifier(MODEL).steps(tps)
    first, second = answer_features("p1", "customer", steps, MODEL, GAP, 0, 10**18)
    assert dict(first.features) == pytest.approx({"app_crash": 0.5})  # one week = one half-life
    assert (first.kind, first.observed) == ("nps", 30.0)
    assert dict(second.features) == pytest.approx({"app_crash": 0.25 + 0.5, SURVEY_SIGNAL: (30 - 50) / 50 * 0.5})
    # the score calibration evaluates is the model's score of exactly these features
    s = sum(MODEL.weights()[n] * v for n, v in second.features)
    assert MODEL.curve(s) < MODEL.curve(0.0)


def test_respondent_features_transform():
    tps = [touchpoint("c", "2026-10-01 10:00", "app", "app_crash", person="p1"),
           touchpoint("a", "2026-10-08 10:00", "app", "survey_response", person="p1", survey=("nps", 3)),
           touchpoint("b", "2026-10-08 12:00", "web", "survey_response", person="p2", survey=("ces", 7)),
           touchpoint("x", "2026-10-08 12:00", "web", "survey_response", person=None, survey=("ces", 7))]
    with beam_pipeline() as p:
        answers = p | beam.Create(tps) | RespondentFeatures(MODEL, GAP, 0, 10**18)
        assert_that(answers | beam.Map(lambda a: (a.person_id, a.kind, a.observed, [n for n, _ in a.features])),
                    equal_to([("p1", "nps", 30.0, ["app_crash"]), ("p2", "ces", 100.0, [])]))


def test_logistic_fit_recovers_known_weights():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 2))
    p = 1 / (1 + np.exp(-(0.5 + 2.0 * x[:, 0] - 1.0 * x[:, 1])))
    y = (rng.random(4000) < p).astype(float)
    b, beta = fit_logistic(x, y, 0.0)
    assert b == pytest.approx(0.5, abs=0.15) and beta == pytest.approx([2.0, -1.0], abs=0.15)
    _, shrunk = fit_logistic(x, y, 1e6, prior=np.array([1.0, 1.0]))
    assert shrunk == pytest.approx([1.0, 1.0], abs=0.01)  # a strong prior wins


def test_held_out_split_is_by_person_and_stable():
    persons = [f"p{i}" for i in range(2000)]
    share = sum(held_out(p, 7, 0.3) for p in persons) / len(persons)
    assert 0.27 < share < 0.33
    assert [held_out(p, 7, 0.3) for p in persons] == [held_out(p, 7, 0.3) for p in persons]
    assert [held_out(p, 7, 0.3) for p in persons] != [held_out(p, 8, 0.3) for p in persons]


def test_too_few_answers_is_a_clear_error():
    answers = [Answer(f"p{i}", "customer", i, "nps", 90.0, ()) for i in range(10)]
    with pytest.raises(ValueError, match="too few survey answers"):
        calibrate(answers, MODEL)


def test_calibration_beats_the_default_weights_on_held_out_persons():
    """The generator's hidden experience drives both failures and survey answers: weights fitted on
    some persons' answers predict the other persons' answers better than the hand-set default."""
    tps, _ = parsed_sample(1000, 28, 11)
    by_person = collections.defaultdict(list)
    for tp in tps:
        by_person[tp["person_id"]].append(tp)
    answers = [a for p, rows in sorted(by_person.items()) for a in person_answers(p, rows, MODEL, GAP, 0, 10**18)]
    assert len(answers) > 600
    result = calibrate(answers, MODEL, seed=7)
    held = result.report["held_out"]
    assert held["calibrated"]["auc"] > held["default"]["auc"] + 0.02, held
    assert held["calibrated"]["spearman"] > held["default"]["spearman"] + 0.02, held
    model = result.model
    assert model.model_version.startswith("default-1-cal-") and model.curve_scale == 1.0
    assert dict(model.calibration)["base_model"] == '"default-1"'
    assert model.weights()["app_crash"] < 0 and model.weights()["unresolved_at_end"] < 0
    assert not math.isnan(held["default"]["auc"]) and result.report["held_out_persons"] > 100
    assert calibrate(answers, MODEL, seed=7).model.weights() == model.weights()  # deterministic
