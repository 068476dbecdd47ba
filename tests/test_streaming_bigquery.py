"""Streaming writes into BigQuery: BigQueryWarehouse.write_rows and a whole stream, against the
real BigQuery API emulator with the real google-cloud-bigquery client."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from apache_beam.testing.test_stream import TestStream as EventStream  # (not collected by pytest)

from touchline import schemas
from touchline.transforms.warehouse import WarehouseError, open_warehouse

from .emulators import new_dataset
from .experience_harness import dump
from .test_streaming_pipeline import message, plan_for, run_stream
from .test_warehouse_bigquery import dl, rows_of

pytestmark = pytest.mark.integration
SCORES = ("person_scores_daily", "person_scores_current")


def current(person, day, score, activity=1.0):
    return {"person_id": person, "role": "customer", "score_date": day, "score": score, "score_source": "inferred",
            "inferred_score": score, "observed_score": None, "raw_score": 0.1, "top_drivers": [{"signal": "s", "contribution": 0.1}],
            "role_scores": [], "components": [{"signal": "s", "value": 0.1}], "activity": activity, "touchpoints": 1,
            "day_delta": 0.1, "capped": 0, "last_survey_at": None, "last_survey_kind": None, "last_survey_score": None,
            "model_version": "m1", "valid_to": 2932896}


def test_write_rows_merges_by_key_and_upserts_only_when_asked(bigquery_emulator):
    wh = open_warehouse(bigquery_emulator.url(new_dataset("streamwrite")))
    try:
        wh.init()
        assert wh.write_rows("dead_letters", [dl(1), dl(2), dl(1, reason="wrong_type")]) == 2
        assert wh.write_rows("dead_letters", [dl(2, reason="too_late"), dl(3)]) == 2   # a redelivered batch + a new row
        got = {r["dead_letter_id"]: r["reason"] for r in rows_of(wh, "dead_letters")}
        assert got == {"id1": "wrong_type", "id2": "too_late", "id3": "invalid_json"}
        with pytest.raises(WarehouseError, match="batch run"):
            wh.write_rows("person_scores_current", [current("p1", 20000, 50.0)])
        wh.write_rows("person_scores_current", [current("p1", 20000, 50.0), current("p2", 20000, 60.0)], upsert=True)
        wh.write_rows("person_scores_current", [current("p1", 20001, 55.0, 1.5)], upsert=True)
        got = {r["person_id"]: (r["score_date"], r["score"]) for r in rows_of(wh, "person_scores_current")}
        assert got == {"p1": (20001, 55.0), "p2": (20000, 60.0)}
        assert not [t.table_id for t in wh._bq().list_tables(f"{wh.project}.{wh.dataset}") if t.table_id.startswith("_stream_")]
    finally:
        wh.close()


def _stream():
    t0 = dt.datetime(2026, 10, 5, 9, tzinfo=dt.timezone.utc).timestamp()

    def event(i, t, kind, **fields):
        return json.dumps({"event_id": f"w{i}", "occurred_at": dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(),
                           "event_type": kind, "cookie_id": f"c{i % 3}", "url": "https://x.example/checkout",
                           "email": f"person{i % 3}@example.com", **fields}).encode()

    kinds = ["page_view", "error", "page_view", "checkout_abandoned", "page_view"]
    elements = [message(i, event(i, t0 + i * 1800, kinds[i % len(kinds)]), "web", t0 + i * 1800) for i in range(18)]
    elements = elements[5:] + elements[:5]      # the first hours arrive last, within the lateness
    return (EventStream().advance_watermark_to(t0 - 1).add_elements(elements[:9])
            .advance_watermark_to(t0 + 12 * 1800).add_elements(elements[9:]).advance_watermark_to_infinity())


@pytest.mark.slow
def test_a_stream_writes_the_same_rows_into_bigquery_as_into_duckdb(bigquery_emulator, tmp_path):
    url = bigquery_emulator.url(new_dataset("stream"))
    run_stream(plan_for(url), _stream())
    duck = str(tmp_path / "stream.duckdb")
    run_stream(plan_for(duck), _stream())
    want = dump(duck, ("touchpoints", "journeys", *SCORES))
    assert len(want["touchpoints"]) >= 10 and len(want["person_scores_current"]) >= 3 and want["journeys"]
    wh = open_warehouse(url)
    try:
        for table, rows in want.items():
            spec = schemas.table_schema(table)
            key = ", ".join(spec.key)
            got = rows_of(wh, table, key)
            if table == "touchpoints":   # the message source differs by nothing but is kept as is
                assert [r["event_id"] for r in got] == [r["event_id"] for r in rows]
                assert [r["person_id"] for r in got] == [r["person_id"] for r in rows]
                continue
            assert got == rows, table
    finally:
        wh.close()
