"""Touchpoint -> signal: first matching signal of the model, survey answers, ordering."""

from __future__ import annotations

from tests.experience_harness import touchpoint
from touchline.transforms.scoring.model import SURVEY_SIGNAL, load_model, parse_model
from touchline.transforms.scoring.signals import Classifier


def test_default_model_classifies_the_generator_event_types():
    c = Classifier(load_model())
    cases = {
        ("app", "app_crash", ()): "app_crash",
        ("web", "rage_click", ()): "rage_click",
        ("transactions", "payment_declined", ()): "payment_declined",
        ("transactions", "payout_sent", (("delayed", "true"),)): "payout_late",
        ("transactions", "payout_sent", (("kind", "weekly"),)): "payout_sent",
        ("support", "ticket_closed", (("resolution", "unresolved"),)): "ticket_closed_unresolved",
        ("support", "ticket_closed", ()): "ticket_resolved",
        ("transactions", "order_delivered", (("on_time", "true"),)): "order_delivered",
        ("transactions", "order_delivered", (("on_time", "false"),)): "order_delivered_late",
        ("web", "page_view", ()): "engagement",
        ("chatbot", "message_sent", ()): "engagement",  # a plug-in channel: anything else is engagement
    }
    for (channel, event_type, attrs), signal in cases.items():
        assert c.signal(channel, event_type, dict(attrs)) == signal, (channel, event_type, attrs)


def test_first_match_wins_and_conditions_combine():
    model = parse_model({
        "model_version": "m",
        "signals": {
            "app_only_crash": {"weight": -2, "match": [{"channel": "app", "event_type": ["app_crash", "anr"]}]},
            "any_crash": {"weight": -1, "match": [{"event_type": "app_crash"}]},
            "vip_view": {"weight": 1, "match": [{"event_type": "page_view", "attributes": {"tier": ["gold", "vip"]}}]},
        },
    })
    c = Classifier(model)
    assert c.signal("app", "anr", {}) == "app_only_crash"
    assert c.signal("kiosk", "app_crash", {}) == "any_crash"
    assert c.signal("web", "page_view", {"tier": "vip"}) == "vip_view"
    assert c.signal("web", "page_view", {"tier": "basic"}) is None
    assert c.signal("web", "page_view", {}) is None


def test_survey_answers_are_the_survey_signal_with_a_signed_value():
    c = Classifier(load_model())
    promoter = c.step(touchpoint("s1", "2026-10-02 10:00", "app", "survey_response", survey=("nps", 10)))
    detractor = c.step(touchpoint("s2", "2026-10-02 10:00", "support", "survey_response", survey=("csat", 1)))
    neutral = c.step(touchpoint("s3", "2026-10-02 10:00", "web", "survey_response", survey=("ces", 4)))
    assert (promoter.signal, promoter.value, promoter.observed) == (SURVEY_SIGNAL, 1.0, 100.0)
    assert (detractor.value, detractor.observed) == (-1.0, 0.0)
    assert (neutral.value, neutral.observed) == (0.0, 50.0)
    bogus = c.step(touchpoint("s4", "2026-10-02 10:00", "app", "survey_response", survey=("nps", 42)))
    assert bogus.signal == "engagement" and bogus.observed is None


def test_steps_are_time_ordered_with_ties_by_event_id():
    c = Classifier(load_model())
    steps = c.steps([touchpoint("b", "2026-10-02 10:00", "web", "page_view"),
                     touchpoint("a", "2026-10-02 10:00", "web", "click"),
                     touchpoint("c", "2026-10-01 23:59", "app", "app_open")])
    assert [s.event_id for s in steps] == ["c", "a", "b"]
