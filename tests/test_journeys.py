"""Journeys: sessionization across channels, outcomes and friction flags on crafted journeys."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import beam_pipeline
from tests.experience_harness import touchpoint as tp
from touchline.transforms.journeys import BuildJourneys, analyze, journey_id, journey_row, sessionize
from touchline.transforms.scoring.model import load_model
from touchline.transforms.scoring.signals import Classifier

MODEL = load_model()
GAP = 12 * 3_600_000_000


def journeys_of(*touchpoints, gap=GAP):
    steps = Classifier(MODEL).steps(touchpoints)
    return [journey_row("p1", "customer", steps, j, MODEL) for j in analyze(steps, MODEL, gap)]


def only(*touchpoints):
    rows = journeys_of(*touchpoints)
    assert len(rows) == 1, rows
    return rows[0]


def test_split_on_inactivity_across_channels():
    rows = journeys_of(
        tp("a", "2026-10-01 09:00", "web", "page_view"),
        tp("b", "2026-10-01 09:05", "app", "app_open"),
        tp("c", "2026-10-01 20:00", "support", "ticket_opened", ticket_id="T"),  # 10h55 later: same journey
        tp("d", "2026-10-02 09:00", "web", "page_view"),  # 13h later: a new one
    )
    assert [r["touchpoints"] for r in rows] == [3, 1]
    first = rows[0]
    assert first["channels"] == ["web", "app", "support"] and first["channel_path"] == ["web", "app", "support"]
    assert first["transitions"] == 2 and first["first_event_id"] == "a" and first["last_event_id"] == "c"
    assert first["journey_id"] == journey_id("p1", "a") != rows[1]["journey_id"]
    assert sessionize([], GAP) == []


def test_outcomes_follow_the_last_outcome_touchpoint():
    assert only(tp("a", "2026-10-01 09:00", "web", "checkout_started"),
                tp("b", "2026-10-01 09:02", "transactions", "payment_declined"),
                tp("c", "2026-10-01 09:10", "transactions", "order_placed"))["outcome"] == "converted"
    assert only(tp("a", "2026-10-01 09:00", "web", "checkout_started"),
                tp("b", "2026-10-01 09:02", "transactions", "payment_declined"))["outcome"] == "failed"
    assert only(tp("a", "2026-10-01 09:00", "app", "checkout_started"),
                tp("b", "2026-10-01 09:01", "app", "screen_view"))["outcome"] == "abandoned"
    assert only(tp("a", "2026-10-01 09:00", "support", "ticket_opened", ticket_id="T"),
                tp("b", "2026-10-01 10:00", "support", "ticket_resolved", ticket_id="T"))["outcome"] == "resolved"
    assert only(tp("a", "2026-10-01 09:00", "app", "app_open"),
                tp("b", "2026-10-01 09:01", "app", "app_crash"))["outcome"] == "failed"
    assert only(tp("a", "2026-10-01 09:00", "app", "app_crash"),
                tp("b", "2026-10-01 09:05", "app", "app_open"))["outcome"] == "engaged"


def test_channel_switch_after_a_failure_within_hours():
    row = only(tp("a", "2026-10-01 09:00", "web", "web_error"),
               tp("b", "2026-10-01 09:20", "web", "page_view"),  # same channel: no switch
               tp("c", "2026-10-01 11:00", "support", "ticket_opened", ticket_id="T"))
    switch = [f for f in row["friction"] if f["flag"] == "channel_switch_after_failure"]
    assert switch == [{"flag": "channel_switch_after_failure", "flagged_at": row["end_time"], "event_id": "c"}]
    late = journeys_of(tp("a", "2026-10-01 09:00", "web", "web_error"),
                       tp("b", "2026-10-01 15:30", "app", "app_open"))  # 6h30 later: not "within hours"
    assert "channel_switch_after_failure" not in late[0]["friction_flags"]
    # to transactions (a system channel) is not a switch by the person
    assert "channel_switch_after_failure" not in only(tp("a", "2026-10-01 09:00", "app", "app_crash"),
                                                      tp("b", "2026-10-01 09:10", "transactions", "payout_sent"))["friction_flags"]


def test_repeat_contact_within_seven_days_spans_journeys():
    rows = journeys_of(tp("a", "2026-10-01 09:00", "support", "ticket_opened", ticket_id="T1"),
                       tp("b", "2026-10-01 09:30", "support", "ticket_resolved", ticket_id="T1"),
                       tp("c", "2026-10-06 09:00", "support", "ticket_opened", ticket_id="T2"),
                       tp("d", "2026-10-06 09:30", "support", "ticket_resolved", ticket_id="T2"),
                       tp("e", "2026-10-14 09:00", "support", "ticket_opened", ticket_id="T3"))
    assert ["repeat_contact" in r["friction_flags"] for r in rows] == [False, True, False]


def test_slow_first_response_and_slow_resolution():
    rows = journeys_of(tp("a", "2026-10-01 09:00", "support", "ticket_opened", ticket_id="T"),
                       tp("b", "2026-10-01 18:30", "support", "agent_response", ticket_id="T"),  # 9h30 > 8h
                       tp("c", "2026-10-01 19:00", "support", "agent_response", ticket_id="T"),
                       tp("d", "2026-10-03 12:00", "support", "ticket_resolved", ticket_id="T"))  # 51h > 48h
    flags = [(f["flag"], f["event_id"]) for r in rows for f in r["friction"]]
    assert ("slow_first_response", "b") in flags and ("slow_resolution", "d") in flags
    assert not any(e == "c" and f.startswith("slow") for f, e in flags)  # the second response is not a first one
    fast = only(tp("a", "2026-10-01 09:00", "support", "ticket_opened", ticket_id="T"),
                tp("b", "2026-10-01 09:30", "support", "agent_response", ticket_id="T"),
                tp("c", "2026-10-01 10:00", "support", "ticket_resolved", ticket_id="T"))
    assert fast["friction_flags"] == []


def test_unresolved_at_end():
    open_ticket = journeys_of(tp("a", "2026-10-01 09:00", "support", "ticket_opened", ticket_id="T"),
                              tp("b", "2026-10-01 09:30", "support", "agent_response", ticket_id="T"),
                              tp("c", "2026-10-03 09:00", "support", "ticket_resolved", ticket_id="T"))
    assert [("unresolved_at_end" in r["friction_flags"]) for r in open_ticket] == [True, False]
    assert open_ticket[0]["friction"][-1]["event_id"] == "b"  # raised at the journey's last touchpoint
    closed = only(tp("a", "2026-10-01 09:00", "support", "ticket_opened", ticket_id="T"),
                  tp("b", "2026-10-01 11:00", "support", "ticket_closed", ticket_id="T", attributes={"resolution": "unresolved"}))
    assert "unresolved_at_end" in closed["friction_flags"] and closed["outcome"] == "failed"


def test_payment_decline_late_delivery_refund_and_many_channels():
    row = only(tp("a", "2026-10-01 09:00", "web", "checkout_started"),
               tp("b", "2026-10-01 09:01", "transactions", "payment_declined"),
               tp("c", "2026-10-01 09:20", "transactions", "delivery_late"),
               tp("d", "2026-10-01 09:30", "transactions", "refund_issued"),
               tp("e", "2026-10-01 09:40", "web", "page_view"))
    assert row["friction_flags"] == ["channel_switch_after_failure", "late_delivery", "payment_decline", "refund"]
    assert "many_channels" in only(tp("a", "2026-10-01 09:00", "web", "page_view"),
                                   tp("b", "2026-10-01 09:05", "app", "app_open"),
                                   tp("c", "2026-10-01 09:10", "support", "ticket_opened", ticket_id="T"))["friction_flags"]
    partner = only(tp("p", "2026-10-05 09:00", "transactions", "payout_sent", attributes={"delayed": "true"}))
    assert partner["friction_flags"] == ["late_delivery"]
    assert row["signal_weight"] < 0 and row["friction_weight"] == -2.0 - 1.0 - 1.0 - 0.5


def test_build_journeys_keeps_roles_and_persons_apart():
    tps = [tp("a", "2026-10-01 09:00", "app", "app_open", person="p1"),
           tp("b", "2026-10-01 09:05", "app", "app_open", person="p1", role="employee"),
           tp("c", "2026-10-01 09:06", "app", "app_crash", person="p1", role="employee"),
           tp("d", "2026-10-01 09:07", "web", "page_view", person="p2"),
           tp("e", "2026-10-01 09:08", "web", "page_view", person=None)]
    with beam_pipeline() as p:
        rows = p | beam.Create(tps) | BuildJourneys(MODEL, gap_hours=12)
        assert_that(rows | beam.Map(lambda r: (r["person_id"], r["role"], r["touchpoints"], r["outcome"])),
                    equal_to([("p1", "customer", 1, "engaged"), ("p1", "employee", 2, "failed"),
                              ("p2", "customer", 1, "engaged")]))
