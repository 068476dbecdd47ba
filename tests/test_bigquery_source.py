"""Raw events from BigQuery tables: payload shape, date filters, stable content positions, and a
distributed read over several Storage Read streams of the emulator."""

from __future__ import annotations

import datetime as dt

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from touchline import schemas
from touchline.schemas.bigquery import field as bq_field
from touchline.schemas.model import columns
from touchline.transforms.bigquery_connect import BigQueryConnection
from touchline.transforms.bigquery_source import ReadBigQueryTable, TableInput, _payload_converter, _positions, canonical, inspect_table

from .conftest import beam_pipeline
from .emulators import PROJECT, new_dataset


def _raw_app_columns():
    return {c.name: c for c in columns(schemas.load("raw_app_event"))}


def test_payload_takes_the_raw_schema_shape():
    cols = _raw_app_columns()
    props = _payload_converter(cols["properties"])
    assert props([{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]) == {"a": "1", "b": "2"}
    stamp = _payload_converter(cols["occurred_at"], as_text=True)
    assert stamp(dt.datetime(2026, 10, 1, 9, 30, 0, 123000, tzinfo=dt.timezone.utc)) == "2026-10-01T09:30:00.123000Z"
    assert stamp(dt.datetime(2026, 10, 1, 9, 30)) == "2026-10-01T09:30:00Z"  # DATETIME: taken as UTC
    assert stamp("2026-10-01T09:30:00+02:00") == "2026-10-01T09:30:00+02:00"
    survey = _payload_converter(cols["survey"])
    assert survey({"kind": "nps", "score": 9}) == {"kind": "nps", "score": 9} and survey(None) is None


def test_row_restriction_covers_whole_days():
    base = TableInput("app", "p.d.t", ("event_id",), from_date=dt.date(2026, 10, 1), to_date=dt.date(2026, 10, 3))
    assert TableInput(**{**base.__dict__, "date_column": "d", "date_type": "DATE"}).row_restriction == \
        "`d` >= DATE '2026-10-01' AND `d` <= DATE '2026-10-03'"
    assert TableInput(**{**base.__dict__, "date_column": "ts", "date_type": "TIMESTAMP"}).row_restriction == \
        "`ts` >= TIMESTAMP '2026-10-01 00:00:00' AND `ts` < TIMESTAMP '2026-10-04 00:00:00'"
    assert TableInput(**{**base.__dict__, "date_column": "_PARTITIONDATE", "date_type": "DATE"}).row_restriction.startswith(
        "_PARTITIONDATE >= DATE")
    assert base.row_restriction == ""


def test_identical_rows_get_distinct_stable_positions():
    text = canonical({"event_id": "e", "b": 1})
    out = list(_positions((("ok", text), 2), "p.d.t"))
    assert [o[0] for o in out] == [out[0][0].rsplit("#", 1)[0] + "#0", out[0][0].rsplit("#", 1)[0] + "#1"]
    assert out[0][0].startswith("bq:p.d.t@") and out[0][1] == {"event_id": "e", "b": 1} and out[0][2] is None
    assert list(_positions((("ok", text), 1), "p.d.t"))[0][0] == out[0][0]  # content-addressed


@pytest.mark.integration
def test_distributed_read_over_streams_is_independent_of_the_split(bigquery_emulator):
    from google.cloud import bigquery

    client = bigquery_emulator.client()
    dataset = new_dataset("src")
    client.create_dataset(dataset)
    fields = [bigquery.SchemaField.from_api_repr(bq_field(c)) for c in columns(schemas.load("raw_app_event"))]
    fields = [bigquery.SchemaField("occurred_at", "TIMESTAMP", "REQUIRED") if f.name == "occurred_at" else f for f in fields]
    table = bigquery.Table(f"{PROJECT}.{dataset}.app", schema=fields)
    table.time_partitioning = bigquery.TimePartitioning(field="occurred_at")
    client.create_table(table)
    start = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    rows = [{"event_id": f"e{i}", "occurred_at": (start + dt.timedelta(minutes=3 * i)).isoformat(), "event_type": "app_open",
             "device_id": f"d{i % 50}", "properties": [{"key": "pad", "value": "x" * 500}]} for i in range(3600)]
    rows += rows[-3:]  # redelivered, byte for byte
    for i in range(0, len(rows), 600):
        assert client.insert_rows_json(table, rows[i:i + 600]) == []
    conn = BigQueryConnection.resolve(PROJECT, endpoint=bigquery_emulator.endpoint, storage_endpoint=bigquery_emulator.storage_endpoint)
    source = inspect_table(conn, "app", f"{PROJECT}.{dataset}.app", None, dt.date(2026, 10, 2), dt.date(2026, 10, 10))
    assert source.timestamp_fields == ("occurred_at",) and source.date_column == "occurred_at" and source.date_type == "TIMESTAMP"
    many = ReadBigQueryTable(source, conn, streams=4)
    assert len(many.create_session()) > 1  # really spread over streams (the table is > 1 MB)

    def read(transform):
        with beam_pipeline() as p:
            out = p | transform
            assert_that(out | beam.Map(lambda r: r[0]), equal_to(expected_sources), label="Positions")
            assert_that(out | beam.Map(lambda r: (r[1]["event_id"], r[1]["occurred_at"], r[1]["properties"]["pad"][:2], r[2])),
                        equal_to(expected_payloads), label="Payloads")

    in_range = [r for r in rows if dt.datetime.fromisoformat(r["occurred_at"]).date() >= dt.date(2026, 10, 2)]
    assert 0 < len(in_range) < len(rows)
    from collections import Counter

    counts = Counter(canonical({**{c: None for c in source.fields}, **r,
                                "occurred_at": dt.datetime.fromisoformat(r["occurred_at"]).isoformat().replace("+00:00", "Z"),
                                "properties": {"pad": "x" * 500}}) for r in in_range)
    expected_sources = [s for (text, n) in counts.items() for s, _, _ in _positions((("ok", text), n), source.table)]
    expected_payloads = [(r["event_id"], dt.datetime.fromisoformat(r["occurred_at"]).isoformat().replace("+00:00", "Z"), "xx", None)
                         for r in in_range]
    read(ReadBigQueryTable(source, conn, streams=4))
    read(ReadBigQueryTable(source, conn, streams=1))
    assert any(n == 2 for n in counts.values())
