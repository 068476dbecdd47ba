"""Survey answers: the 0-100 mapping, NPS arithmetic, aggregates per day x role x channel."""

from __future__ import annotations

import pytest
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import beam_pipeline
from tests.experience_harness import touchpoint
from touchline.transforms.scoring.surveys import (AggregateSurveys, aggregate_row, answer_stats, is_negative, nps, observed_score,
                                                 partial_stats)

import apache_beam as beam


def test_answers_map_onto_0_to_100():
    assert [observed_score("nps", a) for a in (0, 6, 10)] == [0.0, 60.0, 100.0]
    assert [observed_score("csat", a) for a in (1, 3, 5)] == [0.0, 50.0, 100.0]
    assert [observed_score("ces", a) for a in (1, 4, 7)] == [0.0, 50.0, 100.0]
    assert observed_score("nps", 11) is None and observed_score("stars", 3) is None and observed_score("nps", None) is None
    assert is_negative(observed_score("nps", 6)) and not is_negative(observed_score("nps", 7))
    assert is_negative(observed_score("csat", 3)) and not is_negative(observed_score("csat", 4))
    assert is_negative(observed_score("ces", 4)) and not is_negative(observed_score("ces", 5))


def test_nps_arithmetic():
    stats = [answer_stats("nps", a) for a in (9, 10, 6, 8)]
    row = aggregate_row(1, "customer", "app", tuple(map(sum, zip(*stats))))
    assert (row["promoters"], row["passives"], row["detractors"]) == (2, 1, 1)
    assert row["nps"] == 25.0 == nps(2, 1, 4)
    assert nps(0, 0, 0) is None and nps(0, 3, 3) == -100.0


def test_aggregate_surveys_per_day_role_and_channel():
    answers = [("a1", "app", "customer", ("nps", 9)), ("a2", "app", "customer", ("nps", 10)),
               ("a3", "app", "customer", ("nps", 6)), ("a4", "app", "customer", ("nps", 8)),
               ("s1", "support", "customer", ("csat", 5)), ("s2", "support", "customer", ("csat", 2)),
               ("s3", "support", "customer", ("ces", 6)), ("e1", "app", "employee", ("nps", 3))]
    tps = [touchpoint(eid, "2026-10-02 10:00", ch, "survey_response", role=role, survey=sv) for eid, ch, role, sv in answers]
    tps.append(touchpoint("v", "2026-10-02 10:00", "web", "page_view"))
    with beam_pipeline() as p:
        # partial counters of two batches (as the experience stage makes them per bucket), summed by the combine
        partials = [*partial_stats(tps[:3]).items(), *partial_stats(tps[3:]).items()]
        rows = p | beam.Create(partials) | AggregateSurveys()
        got = rows | beam.Map(lambda r: (r["role"], r["channel"], r["responses"], r["nps"], r["csat_mean"],
                                         r["csat_satisfied_share"], r["ces_mean"]))
        assert_that(got, equal_to([
            ("customer", "app", 4, 25.0, None, None, None),
            ("customer", "support", 3, None, 3.5, 0.5, 6.0),
            ("employee", "app", 1, -100.0, None, None, None),
        ]))


def test_aggregates_roll_up_exactly():
    a = aggregate_row(1, "customer", "app", tuple(map(sum, zip(*[answer_stats("nps", x) for x in (10, 10, 0)]))))
    b = aggregate_row(2, "customer", "app", tuple(map(sum, zip(*[answer_stats("nps", x) for x in (7, 5)]))))
    rolled = 100 * ((a["promoters"] + b["promoters"]) - (a["detractors"] + b["detractors"])) / (a["nps_responses"] + b["nps_responses"])
    assert rolled == pytest.approx(nps(2, 2, 5))
