"""The experience stage: incremental == full recompute, identity scopes, scores that behave.

Pure tests drive :func:`score_person` through an in-memory table store with the commit semantics
of the warehouse (replace_scope); the end-to-end tests run the real pipeline (DirectRunner) into a
real DuckDB file, with touchpoints attributed from the generator's ground truth (issue 3 builds the
real identity stitching).
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import os
import random

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from tests.batch_io import ToRows, create_table, create_touchpoints
from tests.conftest import beam_pipeline
from tests.experience_harness import (at, attributed_sample, day_of, dump, parsed_sample, run_stage, touchpoint)
from touchline.pipelines.experience_summary import summary_sections
from touchline.transforms.context import RunContext
from touchline.transforms.experience import ComputeExperience, ExperienceSettings, score_person, state_filters
from touchline.transforms.scoring.daily import VALID_TO
from touchline.transforms.scoring import plugins
from touchline.transforms.scoring.model import load_model, parse_model
from touchline.transforms.warehouse.duckdb import DuckDBWarehouse

MODEL = load_model()
WIDE = ExperienceSettings(lookback_days=30)


class Tables:
    """The experience tables in memory, committed like the warehouse does (replace_scope)."""

    def __init__(self, settings: ExperienceSettings = WIDE):
        self.settings = settings
        self.touchpoints: dict[str, dict] = {}
        self.journeys: dict[str, dict] = {}
        self.daily: dict[tuple, dict] = {}
        self.current: dict[tuple, dict] = {}
        self.counters: collections.Counter = collections.Counter()

    def run(self, run_tps, logical_day: int, scope=()):
        s = self.settings
        earliest, window = s.earliest_day(logical_day), s.window_start(logical_day, MODEL)
        latest = {e: (0, tp) for e, tp in self.touchpoints.items() if tp["event_date"] >= window}
        for tp in run_tps:
            latest[tp["event_id"]] = (1, tp)
        groups = collections.defaultdict(lambda: ([], [], [], []))
        for flag, tp in latest.values():
            groups[tp["person_id"]][0].append((flag, tp))
        for row in scope:
            groups[row["person_id"]][1].append(row["from_date"])
        for row in self.daily.values():
            if row["score_date"] >= earliest:
                groups[row["person_id"]][2].append(row)
        for row in self.current.values():
            if row["score_date"] < earliest:
                groups[row["person_id"]][3].append(row)
        results = [score_person(p, *g, MODEL, s, logical_day) for p, g in sorted(groups.items())]
        for r in results:
            self.counters.update(r.counters)
            if r.scope is None:
                assert not (r.journeys or r.daily or r.current)
                continue
            person, first = r.scope["person_id"], r.scope["from_date"]
            self.journeys = {k: v for k, v in self.journeys.items() if not (v["person_id"] == person and v["start_date"] >= first)}
            self.daily = {k: v for k, v in self.daily.items() if not (v["person_id"] == person and v["score_date"] >= first)}
            self.current = {k: v for k, v in self.current.items() if v["person_id"] != person}
            for row in r.journeys:
                assert row["start_date"] >= first and row["journey_id"] not in self.journeys
                self.journeys[row["journey_id"]] = row
            for row in r.daily:
                key = (row["person_id"], row["role"], row["score_date"])
                assert row["score_date"] >= first and key not in self.daily
                self.daily[key] = row
            for row in r.current:
                key = (row["person_id"], row["role"])
                assert key not in self.current
                self.current[key] = row
        for tp in run_tps:
            self.touchpoints[tp["event_id"]] = tp
        return results

    def state(self):
        return {"journeys": self.journeys, "daily": self.daily, "current": self.current}


def differences(a, b, path="", tol=1e-9):
    """Where two nested structures differ (floats compared to ``tol``)."""
    if isinstance(a, float) and isinstance(b, float):
        return [] if abs(a - b) <= tol else [(path, a, b)]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [(path, "keys", sorted(set(a) ^ set(b), key=str)[:5])]
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}", tol)]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [(path, "length", len(a), len(b))]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]", tol)]
    return [] if a == b else [(path, a, b)]


@pytest.fixture(scope="module")
def sample():
    tps, _ = parsed_sample(150, 10, 5)
    return list(tps)


def full(tps, settings=WIDE) -> Tables:
    t = Tables(settings)
    t.run(tps, max(tp["event_date"] for tp in tps))
    return t


# ------------------------------------------------------------------------------- pure behaviour
def scores(*tps, person="p1", role="customer"):
    t = Tables()
    t.run(list(tps), max(tp["event_date"] for tp in tps))
    return {r["score_date"]: r for r in t.daily.values() if r["person_id"] == person and r["role"] == role}


def good_days(n=21):
    """Three weeks of smooth daily use: app sessions, page views, orders delivered on time."""
    out = []
    for d in range(1, n + 1):
        day = f"2026-10-{d:02d}"
        out += [touchpoint(f"{kind[0]}{k}-{d}", f"{day} 18:0{k}", channel, kind)
                for k, (channel, kind) in enumerate([("app", "app_open"), ("app", "screen_view"), ("app", "feature_used"),
                                                     ("app", "search"), ("web", "page_view"), ("web", "click"),
                                                     ("web", "page_view"), ("app", "screen_view")])]
        if d % 3 == 0:
            out += [touchpoint(f"p{d}", f"{day} 18:05", "transactions", "order_placed"),
                    touchpoint(f"y{d}", f"{day} 18:06", "transactions", "payment_succeeded"),
                    touchpoint(f"d{d}", f"{day} 19:00", "transactions", "order_delivered", attributes={"on_time": "true"})]
    return out


def test_one_isolated_failure_barely_moves_the_score_a_broken_journey_moves_it_a_lot():
    base = good_days()
    last = max(scores(*base))
    before = scores(*base)[last]["score"]
    crash = [touchpoint("crash", "2026-10-21 18:09", "app", "app_crash")]
    after_crash = scores(*base, *crash)[last]["score"]
    broken = [  # a failed payment, a call within hours, a second contact, an unresolved ticket
        touchpoint("b1", "2026-10-21 19:30", "web", "checkout_started"),
        touchpoint("b2", "2026-10-21 19:31", "transactions", "payment_declined"),
        touchpoint("b3", "2026-10-21 20:30", "support", "ticket_opened", ticket_id="T"),
        touchpoint("b4", "2026-10-21 21:00", "support", "agent_response", ticket_id="T"),
        touchpoint("b5", "2026-10-21 22:00", "support", "customer_contact", ticket_id="T"),
    ]
    after_broken = scores(*base, *broken)
    assert before > 85
    assert 0 < before - after_crash < 5, (before, after_crash)
    assert before - after_broken[last]["score"] > 30, (before, after_broken[last]["score"])
    drivers = [d["signal"] for d in after_broken[last]["top_drivers"]]
    assert drivers[0] in ("channel_switch_after_failure", "unresolved_at_end", "repeat_contact")


def test_roles_are_scored_independently():
    customer = good_days(7)
    staff = [touchpoint(f"e{i}", f"2026-10-0{d} 09:0{i}", "app", event, role="employee")
             for d in (2, 3) for i, event in enumerate(("app_open", "app_crash", "app_crash"))]
    alone = Tables()
    alone.run(customer, max(tp["event_date"] for tp in customer))
    both = Tables()
    both.run(customer + staff, max(tp["event_date"] for tp in customer))
    customer_rows = lambda t: {k: v for k, v in t.daily.items() if k[1] == "customer"}  # noqa: E731
    assert customer_rows(alone) == customer_rows(both)
    employee = [v for k, v in both.daily.items() if k[1] == "employee"]
    assert employee and all(r["score"] < 50 for r in employee)
    combined = both.current[("p1", "all")]
    assert {r["role"] for r in combined["role_scores"]} == {"customer", "employee"}
    assert both.current[("p1", "employee")]["score"] <= combined["score"] < both.current[("p1", "customer")]["score"]


# --------------------------------------------------------------------- incremental == full (pure)
def test_day_by_day_runs_equal_one_full_recompute(sample):
    expected = full(sample).state()
    for lookback in (1, 7):
        t = Tables(ExperienceSettings(lookback_days=lookback))
        for day in sorted({tp["event_date"] for tp in sample}):
            t.run([tp for tp in sample if tp["event_date"] == day], day)
        assert differences(expected, t.state()) == [], lookback
    assert t.counters["clamped_scope"] == 0  # with a week of lookback nothing had to be clamped
    assert len(expected["journeys"]) > 300 and len(expected["daily"]) > 600


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_any_arrival_order_equals_one_full_recompute(sample, seed):
    """Touchpoints arrive in random batches (late events, whole days out of order)."""
    expected = full(sample).state()
    rng = random.Random(seed)
    order = list(sample)
    rng.shuffle(order)
    cuts = sorted(rng.sample(range(1, len(order)), rng.randint(2, 6)))
    t = Tables()
    seen = []
    for a, b in zip([0, *cuts], [*cuts, len(order)]):
        seen += order[a:b]
        t.run(order[a:b], max(tp["event_date"] for tp in seen))
    assert differences(expected, t.state()) == []


def test_rerun_of_the_same_batch_changes_nothing(sample):
    days = sorted({tp["event_date"] for tp in sample})
    t = Tables(ExperienceSettings(lookback_days=3))
    for day in days:
        t.run([tp for tp in sample if tp["event_date"] == day], day)
    before = t.state()
    t.run([tp for tp in sample if tp["event_date"] == days[-3]], days[-1])  # a late batch, replayed
    assert differences(before, t.state()) == []


def test_identity_moves_and_retires_persons(sample):
    """A late link moves A's touchpoints to B from day 4 on; later A merges into B entirely."""
    counts = collections.Counter(tp["person_id"] for tp in sample)
    a, b = [p for p, _ in counts.most_common(2)]
    days = sorted({tp["event_date"] for tp in sample})
    t = Tables()
    t.run(sample, days[-1])
    moved = [dict(tp, person_id=b) for tp in sample if tp["person_id"] == a and tp["event_date"] >= days[4]]
    t.run(moved, days[-1], scope=[{"person_id": a, "from_date": days[4]}, {"person_id": b, "from_date": days[4]}])
    relinked = [dict(tp, person_id=b) if tp["person_id"] == a and tp["event_date"] >= days[4] else tp for tp in sample]
    assert differences(full(relinked).state(), t.state()) == []
    assert any(k[0] == a for k in t.current)  # A keeps their earlier days
    merged = [dict(tp, person_id=b) for tp in sample if tp["person_id"] == a]
    t.run(merged, days[-1], scope=[{"person_id": a, "from_date": 0}, {"person_id": b, "from_date": days[0]}])
    everything = [dict(tp, person_id=b) if tp["person_id"] == a else tp for tp in sample]
    assert differences(full(everything).state(), t.state()) == []
    assert not any(k[0] == a for k in t.current) and not any(k[0] == a for k in t.daily)
    assert t.counters["retired"] == 1


def test_late_events_beyond_the_lookback_are_applied_from_the_earliest_recomputable_day():
    early = [touchpoint(f"v{d}", f"2026-10-{d:02d} 10:00", "web", "page_view") for d in range(1, 21)]
    t = Tables(ExperienceSettings(lookback_days=3))
    t.run(early, max(tp["event_date"] for tp in early))
    before = dict(t.daily)
    late = touchpoint("late", "2026-10-05 11:00", "app", "app_crash")
    results = t.run([late], early[-1]["event_date"])
    assert results[0].counters == {"late_beyond_lookback": 1, "clamped_scope": 1, "persons": 1}
    earliest = early[-1]["event_date"] - 3
    assert results[0].scope == {"person_id": "p1", "from_date": earliest}
    assert {k: v for k, v in t.daily.items() if k[2] < earliest} == {k: v for k, v in before.items() if k[2] < earliest}
    # a person never scored before is scored from their first touchpoint, whatever the lookback
    newcomer = [dict(tp, person_id="p2", event_id="n" + tp["event_id"]) for tp in early]
    t.run(newcomer, early[-1]["event_date"])
    assert len([k for k in t.daily if k[0] == "p2" and k[1] == "customer"]) == 20


# ------------------------------------------------------------------------------ Beam composite
def test_compute_experience_transform():
    ctx = RunContext("t", dt.date(2026, 10, 3), "demo")
    tps = [touchpoint("a", "2026-10-01 09:00", "web", "page_view", person="p1"),
           touchpoint("b", "2026-10-02 09:00", "web", "web_error", person="p1"),
           touchpoint("c", "2026-10-02 09:30", "support", "ticket_opened", person="p1", ticket_id="T"),
           touchpoint("d", "2026-10-02 10:00", "app", "survey_response", person="p2", survey=("nps", 9)),
           touchpoint("e", "2026-10-02 10:00", "web", "page_view", person=None),
           touchpoint("f", "2026-10-02 11:00", "web", "page_view", person="broken")]
    # a stored row that cannot be read back (no state in it): that person fails alone, as data, and keeps their rows
    corrupt = {"person_id": "broken", "role": "customer", "score_date": at("2026-09-30 00:00") // 86_400_000_000}
    with beam_pipeline() as p:
        scored = {"touchpoints": create_touchpoints(p, "T", tps, ctx.buckets), "stored": create_touchpoints(p, "H1", [], ctx.buckets),
                  "history_daily": create_table(p, "H2", "person_scores_daily", [corrupt]),
                  "history_current": create_table(p, "H3", "person_scores_current", []),
                  "recompute_scope": p | "S" >> beam.Create([[("gone", 0)]])
                  } | ComputeExperience(ctx, MODEL, ExperienceSettings())
        out = {table: scored[table] | f"Rows{table}" >> ToRows(table) for table in scored}
        oct1 = at("2026-10-01 00:00") // 86_400_000_000
        assert_that(out["_recompute_scope"], equal_to([{"person_id": "p1", "from_date": oct1},
                                                       {"person_id": "p2", "from_date": oct1 + 1},
                                                       {"person_id": "gone", "from_date": 0}]), label="Scope")
        assert_that(out["journeys"] | beam.Map(lambda r: (r["person_id"], r["touchpoints"], r["friction_flags"])),
                    equal_to([("p1", 1, []), ("p1", 2, ["channel_switch_after_failure", "unresolved_at_end"]),
                              ("p2", 1, [])]), label="Journeys")
        assert_that(out["person_scores_daily"] | beam.Map(lambda r: (r["person_id"], r["role"], r["score_source"])),
                    equal_to([("p1", "customer", "inferred"), ("p1", "customer", "inferred"), ("p1", "all", "inferred"),
                              ("p1", "all", "inferred"), ("p2", "customer", "observed"), ("p2", "all", "observed")]),
                    label="Daily")
        assert_that(out["person_scores_current"] | beam.Map(lambda r: (r["person_id"], r["role"], r["valid_to"])),
                    equal_to([("p1", "customer", VALID_TO), ("p1", "all", VALID_TO), ("p2", "customer", VALID_TO),
                              ("p2", "all", VALID_TO)]), label="Current")
        assert_that(out["survey_aggregates"] | beam.Map(lambda r: (r["role"], r["channel"], r["nps"])),
                    equal_to([("customer", "app", 100.0)]), label="Surveys")
        assert_that(out["dead_letters"] | beam.Map(lambda r: (r["channel"], r["source"], r["failed_step"], r["reason"],
                                                              r["error_class"], r["stack"] is not None)),
                    equal_to([("experience", "person:broken", "ScorePersons", "unexpected_error", "TypeError", True)]),
                    label="DeadLetters")


def test_state_reads_cover_the_rules_look_back():
    from touchline.pipelines.batch import history_since
    from touchline.transforms.identity import IdentityConfig

    reads = state_filters(dt.date(2026, 10, 31), MODEL, ExperienceSettings(lookback_days=7))
    # stored touchpoints: one read for identity's lookback and the rules' window (7 + 8 days), whichever is longer
    assert history_since(dt.date(2026, 10, 31), IdentityConfig(lookback_days=0), MODEL, ExperienceSettings(lookback_days=7)) \
        == dt.date(2026, 10, 16)
    assert history_since(dt.date(2026, 10, 31), IdentityConfig(lookback_days=30), MODEL, ExperienceSettings(lookback_days=7)) \
        == dt.date(2026, 10, 1)
    assert reads["history_daily"] == ("person_scores_daily", "score_date >= DATE '2026-10-24'")
    assert reads["history_current"] == ("person_scores_current", "score_date < DATE '2026-10-24'")
    assert reads["history_survey_days"] == ("survey_aggregates", "survey_date < DATE '2026-10-16'")


# ------------------------------------------------------------------- end to end: Beam + DuckDB
def test_runs_into_duckdb_incremental_equals_full(tmp_path):
    """Generated data ingested by the batch pipeline, attributed from ground truth, then scored:
    once over everything, and in two runs (the second with late events) -- the same tables,
    exactly. (Many more orders, re-runs and identity changes: the pure tests above.)"""
    _root, tps, _truth = attributed_sample(150, 10, 5)
    fast, _ = parsed_sample(150, 10, 5)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "source"} for r in rows]  # noqa: E731
    assert strip(tps) == strip(fast)  # the fast fixture of the other tests is the real ingest
    tps = list(tps)
    days = sorted({tp["event_date"] for tp in tps})
    staging = str(tmp_path / "staging")
    whole = str(tmp_path / "full.duckdb")
    written = run_stage(whole, tps, day_of(days[-1]), staging)  # default settings: a first load scores everything
    assert written["journeys"] > 300 and written["dead_letters"] == 0
    # day by day from a checkpoint: days 1-7 (10% of days 6-10 held back), then days 8-10 with the late ones
    rng = random.Random(7)
    late = {tp["event_id"] for tp in tps if rng.random() < 0.1 and tp["event_date"] >= days[5]}
    inc = str(tmp_path / "incremental.duckdb")
    first = [tp for tp in tps if tp["event_date"] <= days[6] and tp["event_id"] not in late]
    run_stage(inc, first, day_of(days[6]), staging)
    checkpoint = dump(inc)
    run_stage(inc, [tp for tp in tps if tp["event_date"] > days[6] or tp["event_id"] in late], day_of(days[9]), staging)
    got = dump(inc)
    assert differences(dump(whole), got) == []
    assert differences(checkpoint, got) != []  # (the second run did change things)

    wh = DuckDBWarehouse(whole)
    try:
        q = wh.query
        assert q("SELECT count(*) FROM person_scores_current WHERE role = 'all'") == \
            q("SELECT count(DISTINCT person_id) FROM person_scores_daily")
        assert q("SELECT count(*) FROM person_scores_current c JOIN (SELECT person_id, role, max(score_date) AS d "
                 "FROM person_scores_daily GROUP BY 1, 2) m ON c.person_id = m.person_id AND c.role = m.role "
                 "AND c.score_date = m.d") == q("SELECT count(*) FROM person_scores_current")
        assert q("SELECT DISTINCT model_version FROM person_scores_daily") == [("default-1",)]
        assert {r[0] for r in q("SELECT DISTINCT score_source FROM person_scores_daily")} == {"observed", "inferred"}
        assert q("SELECT min(score) >= 0 AND max(score) <= 100 FROM person_scores_daily") == [(True,)]
        for title, sql, header in summary_sections(wh.url):
            rows = q(sql)
            assert rows and all(len(r) == len(header) for r in rows), title
    finally:
        wh.close()
    assert not os.path.exists(staging)


class _BigOrder(plugins.SignalPlugin):
    """A plug-in reading a touchpoint field scoring itself never needs (``amount``)."""

    name = "big_order"
    params = {"above": (float, 100.0)}

    def matches(self, touchpoint):
        return float(touchpoint["amount"] or 0) > self.param("above")


def test_signal_plugins_see_every_field_of_the_touchpoint(tmp_path, monkeypatch):
    # the stage converts only the fields scoring reads; a model with plug-ins gets them all
    builtin = plugins.registry()
    monkeypatch.setattr(plugins, "registry", lambda: {**builtin, "big_order": _BigOrder})
    doc = load_model().document()
    doc["signals"] = {"big_order": {"weight": 0.5, "plugin": "big_order", "match": [{"event_type": "order_placed"}]},
                      **doc["signals"]}
    model = parse_model(doc, "big-order.yaml")
    big = {**touchpoint("o1", "2026-10-05 10:00", "transactions", "order_placed"), "amount": decimal.Decimal("250.00")}
    small = {**touchpoint("o2", "2026-10-05 10:05", "transactions", "order_placed"), "amount": decimal.Decimal("20.00")}
    warehouse = str(tmp_path / "w.duckdb")
    run_stage(warehouse, [big, small], dt.date(2026, 10, 5), str(tmp_path / "staging"), model=model)
    tables = dump(warehouse)
    [day] = [r for r in tables["person_scores_daily"] if r["role"] == "customer"]
    assert sorted(c["signal"] for c in day["components"]) == ["big_order", "order_placed"], day["components"]
