"""BigQueryWarehouse against the real BigQuery API emulator (bqemulator) with the real client."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from decimal import Decimal

import fastavro
import pytest

from touchline import schemas
from touchline.schemas.bigquery import load_avro_schema, load_datum, table_fields
from touchline.schemas.rows import converter
from touchline.transforms.bigquery_connect import BigQueryError
from touchline.transforms.warehouse import WarehouseError, open_warehouse
from touchline.transforms.warehouse.bigquery import BigQueryWarehouse

from .emulators import PROJECT, new_dataset

pytestmark = pytest.mark.integration


def dl(i, reason="invalid_json", day=20000):
    return {"dead_letter_id": f"id{i}", "run_id": "r1", "logical_date": day, "channel": "web", "source": f"f@{i}",
            "failed_step": "Decode", "reason": reason, "error_class": "X", "error_message": "m", "stack": None,
            "event_id": None, "payload_encoding": "text", "raw_payload": "p"}


def tp(i, day=20727, **extra):
    return {"event_id": f"e{i}", "channel": "transactions", "event_type": "order_placed",
            "event_time": day * 86_400_000_000 + i, "event_date": day, "person_id": f"p{i % 3}", "role": "customer",
            "identifiers": [{"kind": "customer_id", "id_hash": f"h{i}"}], "session_id": None, "ticket_id": None,
            "order_id": f"o{i}", "survey_kind": None, "survey_score": None, "amount": Decimal("19.99"), "currency": "EUR",
            "attributes": {"k": "v", "n": str(i)}, "source": f"f@{i}", "origin": None, **extra}


RUN = {"run_id": "r", "pipeline": "batch", "logical_date": 20727, "started_at": 1, "finished_at": 2, "status": "succeeded",
       "runner": "DirectRunner", "touchline_version": "0", "model_version": None, "inputs": ["web=x"],
       "metrics": [{"name": "web.read", "value": 3}]}


def stage(folder, table, rows, name="part-0.avro"):
    """Staging files exactly as StageAvro writes them (BigQuery load form)."""
    spec = schemas.table_schema(table)
    os.makedirs(folder / table, exist_ok=True)
    convert = load_datum(spec)
    with open(folder / table / name, "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(load_avro_schema(spec)), [convert(r) for r in rows], codec="deflate")
    return str(folder)


@pytest.fixture
def wh(bigquery_emulator):
    warehouse = open_warehouse(bigquery_emulator.url(new_dataset()))
    warehouse.init()
    yield warehouse
    warehouse.close()


def rows_of(wh, table, order="1"):
    spec = schemas.table_schema(table)
    convert = converter(spec)
    _, rows = wh._run(f"SELECT * FROM {wh._fq(table)} ORDER BY {order}")
    return [convert(dict(r)) for r in rows]


def leftover_tables(wh):
    return sorted(t.table_id for t in wh._bq().list_tables(f"{wh.project}.{wh.dataset}") if t.table_id.startswith("_stage_"))


def test_url_parsing_and_canonical_form():
    wh = BigQueryWarehouse.from_url("bigquery://example.com:proj.sales?endpoint=http://127.0.0.1:9&location=EU")
    assert (wh.project, wh.dataset, wh.conn.location, wh.conn.endpoint) == ("example.com:proj", "sales", "EU", "http://127.0.0.1:9")
    assert BigQueryWarehouse.from_url(wh.url).conn == wh.conn
    with pytest.raises(WarehouseError, match="names no dataset"):
        open_warehouse("bigquery://just-a-project")
    with pytest.raises(WarehouseError, match="unknown parameter 'endpont'"):
        open_warehouse("bigquery://p.d?endpont=x")


def test_warehouse_init_command_creates_partitioned_clustered_described_tables(bigquery_emulator):
    dataset = new_dataset("init")
    cmd = [sys.executable, "-m", "touchline.pipelines.cli", "warehouse", "init", "--warehouse", f"bigquery://{PROJECT}.{dataset}",
           "--bigquery_endpoint", bigquery_emulator.endpoint]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"created dataset {PROJECT}.{dataset}" in result.stdout
    client = bigquery_emulator.client()
    tables = schemas.table_schemas()
    assert {t.table_id for t in client.list_tables(f"{PROJECT}.{dataset}")} == set(tables)  # staging-only records skipped
    for name, spec in tables.items():
        table = client.get_table(f"{PROJECT}.{dataset}.{name}")
        assert table.description == spec.doc
        want = table_fields(spec)
        assert [f.name for f in table.schema] == [f["name"] for f in want]
        for got, field in zip(table.schema, want):
            assert got.field_type in (field["type"], {"RECORD": "STRUCT"}.get(field["type"])), (name, got)
            assert got.mode == field["mode"], (name, got.name)
            assert (got.description or "") == field.get("description", "")
        if spec.partition_by:
            assert table.time_partitioning.type_ == "DAY" and table.time_partitioning.field == spec.partition_by
        else:
            assert table.time_partitioning is None
        assert list(table.clustering_fields or []) == list(spec.cluster_by)
        required = bool(table.require_partition_filter or (table.time_partitioning and table.time_partitioning._properties.get("requirePartitionFilter")))
        assert required == spec.require_partition_filter, name
    touchpoints = {f.name: f for f in client.get_table(f"{PROJECT}.{dataset}.touchpoints").schema}
    assert touchpoints["amount"].field_type == "NUMERIC" and touchpoints["event_time"].field_type == "TIMESTAMP"
    assert touchpoints["attributes"].mode == "REPEATED" and [f.name for f in touchpoints["attributes"].fields] == ["key", "value"]
    again = open_warehouse(bigquery_emulator.url(dataset))
    assert again.init() == []  # up to date: nothing to do
    again.close()


def test_init_adds_new_nullable_columns_and_keeps_rows(wh, tmp_path):
    wh.commit(stage(tmp_path, "dead_letters", [dl(1)]), ["dead_letters"])
    client = wh._bq()
    old = [f for f in table_fields(schemas.table_schema("dead_letters")) if f["name"] != "event_id"]
    client.delete_table(f"{wh.project}.{wh.dataset}.dead_letters")
    from google.cloud import bigquery

    client.create_table(bigquery.Table(f"{wh.project}.{wh.dataset}.dead_letters", schema=[bigquery.SchemaField.from_api_repr(f) for f in old]))
    wh._run(f"INSERT INTO {wh._fq('dead_letters')} (dead_letter_id, run_id, logical_date, channel, source, failed_step, reason, "
            f"error_class, error_message, payload_encoding, raw_payload) VALUES ('old', 'r', DATE '2024-10-04', 'web', 's', 'Read', "
            f"'x', 'X', 'm', 'text', 'p')")
    assert wh.init() == ["added dead_letters.event_id", "note: dead_letters is partitioned by nothing but the schema says logical_date "
                                                        "(partitioning changes need a new table)"]
    assert "event_id" in [f.name for f in client.get_table(f"{wh.project}.{wh.dataset}.dead_letters").schema]
    assert wh.query("SELECT dead_letter_id, event_id FROM dead_letters") == [("old", None)]


def test_merge_updates_matched_rows_and_inserts_new_ones(wh, tmp_path):
    assert wh.commit(stage(tmp_path / "r1", "touchpoints", [tp(1), tp(2), tp(3, day=20728)]), ["touchpoints"]) == {"touchpoints": 3}
    changed = tp(2, amount=Decimal("5.00"), attributes={"k": "changed"}, identifiers=[])
    assert wh.commit(stage(tmp_path / "r2", "touchpoints", [changed, tp(4, day=20729)]), ["touchpoints"]) == {"touchpoints": 2}
    assert rows_of(wh, "touchpoints") == [tp(1), changed, tp(3, day=20728), tp(4, day=20729)]
    assert leftover_tables(wh) == []


def test_merge_moves_a_row_whose_partition_changed(wh, tmp_path):
    """dead_letters is partitioned by logical_date; re-reading a file on another date keeps one row per id."""
    wh.commit(stage(tmp_path / "r1", "dead_letters", [dl(1), dl(2)]), ["dead_letters"])
    wh.commit(stage(tmp_path / "r2", "dead_letters", [dl(2, reason="wrong_type", day=20001), dl(3)]), ["dead_letters"])
    assert wh.query("SELECT dead_letter_id, reason, logical_date FROM dead_letters ORDER BY 1") == [
        ("id1", "invalid_json", dt.date(2024, 10, 4)), ("id2", "wrong_type", dt.date(2024, 10, 5)),
        ("id3", "invalid_json", dt.date(2024, 10, 4))]


def test_insert_if_absent_keeps_the_first_row(wh, tmp_path):
    assert wh.commit(str(tmp_path / "none"), [], rows={"pipeline_runs": [RUN]}) == {"pipeline_runs": 1}
    wh.commit(str(tmp_path / "none"), [], rows={"pipeline_runs": [{**RUN, "finished_at": 99}, {**RUN, "run_id": "r2"}]})
    assert rows_of(wh, "pipeline_runs") == [RUN, {**RUN, "run_id": "r2"}]


def test_rerun_of_the_same_staging_changes_nothing(wh, tmp_path):
    staging = stage(tmp_path, "touchpoints", [tp(i, day=20727 + i % 3) for i in range(20)])
    stage(tmp_path, "dead_letters", [dl(i) for i in range(5)])
    wh.commit(staging, ["touchpoints", "dead_letters"], rows={"pipeline_runs": [RUN]})
    before = {t: rows_of(wh, t) for t in ("touchpoints", "dead_letters", "pipeline_runs")}
    wh.commit(staging, ["touchpoints", "dead_letters"], rows={"pipeline_runs": [{**RUN, "finished_at": 7}]})
    assert {t: rows_of(wh, t) for t in before} == before


def test_failed_commit_leaves_every_target_as_it_was(wh, tmp_path):
    wh.commit(stage(tmp_path / "r1", "touchpoints", [tp(1)]), ["touchpoints"])
    stage(tmp_path / "r1", "dead_letters", [dl(1)])
    wh.commit(str(tmp_path / "r1"), ["dead_letters"])
    # repeated key upstream: refused before anything is applied
    staging = stage(tmp_path / "r2", "touchpoints", [tp(1, event_type="changed"), tp(9)])
    stage(tmp_path / "r2", "dead_letters", [dl(5), dl(5)])
    with pytest.raises(WarehouseError, match="repeat key"):
        wh.commit(staging, ["touchpoints", "dead_letters"])
    assert rows_of(wh, "touchpoints") == [tp(1)] and [r["dead_letter_id"] for r in rows_of(wh, "dead_letters")] == ["id1"]
    # a statement failing inside the transaction: the MERGEs already applied roll back
    staging = stage(tmp_path / "r3", "touchpoints", [tp(1, event_type="changed"), tp(9)])
    stage(tmp_path / "r3", "dead_letters", [dl(7)])
    original = wh._statements

    def sabotage(spec, stage_ref, scope):
        statements = original(spec, stage_ref, scope)
        return statements + (["SELECT ERROR('injected failure')"] if spec.name == "dead_letters" else [])

    wh._statements = sabotage
    with pytest.raises(WarehouseError, match="injected failure"):
        wh.commit(staging, ["touchpoints", "dead_letters"])
    wh._statements = original
    assert rows_of(wh, "touchpoints") == [tp(1)] and [r["dead_letter_id"] for r in rows_of(wh, "dead_letters")] == ["id1"]
    assert leftover_tables(wh) == []
    # and the re-run converges
    wh.commit(staging, ["touchpoints", "dead_letters"])
    assert [r["event_type"] for r in rows_of(wh, "touchpoints")] == ["changed", "order_placed"]


SCOPED = {
    "type": "record", "name": "Thing", "namespace": "test", "doc": "A scoped test table.",
    "touchline": {"table": "things", "key": ["thing_id"], "write": "replace_scope", "scope_by": ["person_id", "day"],
                  "partition_by": "day", "cluster_by": ["person_id"]},
    "fields": [{"name": "thing_id", "type": "string"}, {"name": "person_id", "type": "string"},
               {"name": "day", "type": {"type": "int", "logicalType": "date"}}],
}


@pytest.fixture
def scoped_schema(tmp_path, monkeypatch):
    folder = tmp_path / "extra_schemas"
    folder.mkdir()
    (folder / "thing.avsc").write_text(json.dumps(SCOPED))
    monkeypatch.setattr(schemas, "_extra_schema_dirs", lambda: [folder])
    schemas.clear_cache()
    yield
    monkeypatch.undo()
    schemas.clear_cache()


def test_replace_scope_deletes_what_a_recompute_no_longer_produces(scoped_schema, bigquery_emulator, tmp_path):
    wh = open_warehouse(bigquery_emulator.url(new_dataset("scope")))
    thing = lambda i, p, d: {"thing_id": f"t{i}", "person_id": p, "day": d}  # noqa: E731
    s1 = stage(tmp_path / "r1", "things", [thing(1, "a", 10), thing(2, "a", 20), thing(3, "b", 20), thing(6, "c", 5)])
    stage(tmp_path / "r1", schemas.RECOMPUTE_SCOPE, [{"person_id": p, "from_date": 0} for p in "abc"])
    wh.init()
    wh.commit(s1, ["things", schemas.RECOMPUTE_SCOPE])
    # run 2 recomputes a from day 15 (t2 became t4) and b entirely (b merged away: no rows left); c untouched
    s2 = stage(tmp_path / "r2", "things", [thing(4, "a", 16)])
    stage(tmp_path / "r2", schemas.RECOMPUTE_SCOPE, [{"person_id": "a", "from_date": 15}, {"person_id": "b", "from_date": 0}])
    assert wh.commit(s2, ["things", schemas.RECOMPUTE_SCOPE]) == {"things": 1}
    assert wh.query("SELECT thing_id, person_id FROM things ORDER BY 1") == [("t1", "a"), ("t4", "a"), ("t6", "c")]
    s3 = stage(tmp_path / "r3", "things", [thing(5, "a", 3)])
    stage(tmp_path / "r3", schemas.RECOMPUTE_SCOPE, [{"person_id": "a", "from_date": 15}])
    with pytest.raises(WarehouseError, match="outside the run's recompute scope"):
        wh.commit(s3, ["things", schemas.RECOMPUTE_SCOPE])
    assert wh.query("SELECT count(*) FROM things") == [(3,)]
    names = {t.table_id for t in wh._bq().list_tables(f"{wh.project}.{wh.dataset}")}
    assert "_recompute_scope" not in names and not [n for n in names if n.startswith("_stage_")]
    wh.close()


def test_snapshot_read_gives_rows_in_datum_form(wh, tmp_path):
    from apache_beam.testing.util import assert_that, equal_to

    from .batch_io import ToRows
    from .conftest import beam_pipeline

    rows = [tp(1), tp(2, day=20000), tp(3, amount=None, attributes={}, identifiers=[], person_id=None)]
    wh.commit(stage(tmp_path, "touchpoints", rows), ["touchpoints"])
    source = wh.read("touchpoints", str(tmp_path / "run"), where="event_date >= DATE '2026-01-01'")
    with beam_pipeline() as p:
        assert_that(p | source | ToRows("touchpoints"), equal_to([rows[0], rows[2]]))


def test_unreachable_endpoint_is_reported_at_once(tmp_path):
    from .emulators import free_port

    url = f"bigquery://{PROJECT}.x?endpoint=http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(WarehouseError, match=r"cannot reach the BigQuery endpoint http://127\.0\.0\.1:\d+ .*connection refused"):
        open_warehouse(url).check()
    with pytest.raises(WarehouseError, match="start the emulator or correct --bigquery_endpoint"):
        open_warehouse(url).init()
    assert time.monotonic() - started < 60  # generous: the point is "no retry loop", not speed


def test_batch_against_an_unreachable_endpoint_prints_one_line(tmp_path):
    from .emulators import free_port

    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "a.jsonl").write_text("{}\n")
    result = _cli(["batch", "--input", str(tmp_path), "--hash_key_source", "demo", "--staging_dir", str(tmp_path / "s"),
                   "--warehouse", f"bigquery://{PROJECT}.x", "--bigquery_endpoint", f"http://127.0.0.1:{free_port()}"],
                  {k: v for k, v in os.environ.items() if not k.startswith("TOUCHLINE_")})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot reach the BigQuery endpoint" in result.stderr and "fix: start the emulator" in result.stderr


def test_missing_dataset_names_the_fix(bigquery_emulator):
    with pytest.raises(WarehouseError, match=r"(?s)dataset test-proj\.nope_\w+ does not exist.*touchline warehouse init"):
        open_warehouse(bigquery_emulator.url(new_dataset("nope"))).check()


def _cli(args, env):
    return subprocess.run([sys.executable, "-m", "touchline.pipelines.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_missing_credentials_give_one_clear_message(tmp_path, monkeypatch):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "TOUCHLINE_BIGQUERY", "CLOUDSDK"))}
    base.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), NO_GCE_CHECK="True")
    missing_file = _cli(["warehouse", "init", "--warehouse", "bigquery://some-project.touchline"],
                        {**base, "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing-key.json")})
    assert missing_file.returncode == 2, missing_file.stderr
    assert "Traceback" not in missing_file.stderr
    assert "missing-key.json" in missing_file.stderr and "gcloud auth application-default login" in missing_file.stderr
    # no credentials anywhere (no key file, no gcloud login, not on GCE): the production path never
    # falls back to anonymous access
    for name in [k for k in os.environ if k.startswith(("GOOGLE_", "TOUCHLINE_BIGQUERY", "CLOUDSDK"))]:
        monkeypatch.delenv(name)
    for name, value in base.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BigQueryError, match="(?s)no Google credentials found for BigQuery.*--bigquery_endpoint"):
        open_warehouse("bigquery://some-project.touchline").check()
