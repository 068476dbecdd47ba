import datetime as dt
import multiprocessing
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from touchline import schemas
from touchline.schemas.arrow import arrow_schema
from touchline.transforms.warehouse import WarehouseError, open_warehouse
from touchline.transforms.warehouse.duckdb import DuckDBWarehouse


def dl(i, reason="invalid_json", run="r1"):
    return {"dead_letter_id": f"id{i}", "run_id": run, "logical_date": 20000, "channel": "web", "source": f"f@{i}",
            "failed_step": "Decode", "reason": reason, "error_class": "X", "error_message": "m", "stack": None,
            "event_id": None, "payload_encoding": "text", "raw_payload": "p"}


def stage(tmp_path, table, rows, name="part-0.parquet"):
    folder = tmp_path / "staging" / table
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(schemas.table_schema(table))), folder / name)
    return str(tmp_path / "staging")


def test_open_warehouse_urls(tmp_path):
    assert isinstance(open_warehouse(str(tmp_path / "a.duckdb")), DuckDBWarehouse)
    assert isinstance(open_warehouse(f"duckdb:{tmp_path}/b"), DuckDBWarehouse)
    with pytest.raises(WarehouseError, match="unknown warehouse"):
        open_warehouse("postgres://x")


def test_merge_replaces_by_key_and_insert_if_absent_keeps_first(tmp_path):
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    staging = stage(tmp_path, "dead_letters", [dl(1), dl(2)])
    assert wh.commit(staging, ["dead_letters"]) == {"dead_letters": 2}
    staging = stage(tmp_path, "dead_letters", [dl(2, reason="wrong_type"), dl(3)])
    wh.commit(staging, ["dead_letters"])
    assert wh.query("SELECT dead_letter_id, reason FROM dead_letters ORDER BY 1") == [
        ("id1", "invalid_json"), ("id2", "wrong_type"), ("id3", "invalid_json")]
    run = {"run_id": "r", "pipeline": "batch", "logical_date": 1, "started_at": 1, "finished_at": 2, "status": "succeeded",
           "runner": "DirectRunner", "touchline_version": "0", "model_version": None, "inputs": [], "metrics": []}
    wh.commit(str(tmp_path / "none"), [], rows={"pipeline_runs": [run]})
    wh.commit(str(tmp_path / "none"), [], rows={"pipeline_runs": [{**run, "finished_at": 99}]})
    assert wh.query("SELECT finished_at FROM pipeline_runs") == [(__import__("datetime").datetime(1970, 1, 1, 0, 0, 0, 2),)]
    wh.close()


def test_failed_commit_leaves_targets_unchanged(tmp_path):
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    wh.commit(stage(tmp_path, "dead_letters", [dl(1)]), ["dead_letters"])
    staging = stage(tmp_path, "dead_letters", [dl(5), dl(5)])  # repeated key: a bug upstream
    stage(tmp_path, "touchpoints", [])
    with pytest.raises(WarehouseError, match="repeat key"):
        wh.commit(staging, ["touchpoints", "dead_letters"])
    assert wh.query("SELECT dead_letter_id FROM dead_letters") == [("id1",)]
    wh.close()


def _hold_lock(path, ready, release):
    import duckdb

    con = duckdb.connect(path)
    ready.set()
    release.wait(30)
    con.close()


def test_locked_file_gives_an_actionable_message(tmp_path):
    path = str(tmp_path / "locked.duckdb")
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(path, ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(WarehouseError, match="open in another process.*close that program"):
            DuckDBWarehouse(path).check()
    finally:
        release.set()
        proc.join(30)


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(WarehouseError, match="does not exist"):
        DuckDBWarehouse(os.path.join(tmp_path, "nope", "w.duckdb")).check()


def test_read_snapshot_round_trips_rows_in_datum_form(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to
    from decimal import Decimal

    from .batch_io import ToRows
    from .conftest import beam_pipeline

    tp = {"event_id": "e1", "channel": "transactions", "event_type": "order_placed", "event_time": 1_790_841_600_123_456,
          "event_date": 20727, "person_id": "p1", "role": "customer",
          "identifiers": [{"kind": "customer_id", "id_hash": "h"}], "session_id": None, "ticket_id": None, "order_id": "o1",
          "survey_kind": None, "survey_score": None, "amount": Decimal("19.99"), "currency": "EUR",
          "attributes": {"k": "v"}, "source": "f@0", "origin": None}
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    wh.commit(stage(tmp_path, "touchpoints", [tp, {**tp, "event_id": "e2", "event_date": 1}]), ["touchpoints"])
    source = wh.read("touchpoints", str(tmp_path / "run"), where="event_date >= DATE '2026-01-01'")
    wh.close()
    with beam_pipeline() as p:
        assert_that(p | source | ToRows("touchpoints"), equal_to([tp]))


SCOPED = {
    "type": "record", "name": "Thing", "namespace": "test",
    "touchline": {"table": "things", "key": ["thing_id"], "write": "replace_scope", "scope_by": ["person_id", "day"]},
    "fields": [{"name": "thing_id", "type": "string"}, {"name": "person_id", "type": "string"},
               {"name": "day", "type": {"type": "int", "logicalType": "date"}}],
}


@pytest.fixture
def scoped_schema(tmp_path, monkeypatch):
    folder = tmp_path / "extra_schemas"
    folder.mkdir()
    (folder / "thing.avsc").write_text(__import__("json").dumps(SCOPED))
    monkeypatch.setattr(schemas, "_extra_schema_dirs", lambda: [folder])
    schemas.clear_cache()
    yield
    monkeypatch.undo()
    schemas.clear_cache()


def test_replace_scope_deletes_what_a_recompute_no_longer_produces(tmp_path, scoped_schema):
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    thing = lambda i, p, d: {"thing_id": f"t{i}", "person_id": p, "day": d}  # noqa: E731
    s1 = stage(tmp_path / "r1", "things", [thing(1, "a", 10), thing(2, "a", 20), thing(3, "b", 20)])
    stage(tmp_path / "r1", schemas.RECOMPUTE_SCOPE, [{"person_id": "a", "from_date": 0}, {"person_id": "b", "from_date": 0}])
    wh.commit(s1, ["things", schemas.RECOMPUTE_SCOPE])
    # run 2 recomputes a from day 15 (t2 became t4) and b entirely (b merged away: no rows left)
    s2 = stage(tmp_path / "r2", "things", [thing(4, "a", 16)])
    stage(tmp_path / "r2", schemas.RECOMPUTE_SCOPE, [{"person_id": "a", "from_date": 15}, {"person_id": "b", "from_date": 0}])
    wh.commit(s2, ["things", schemas.RECOMPUTE_SCOPE])
    assert wh.query("SELECT thing_id, person_id FROM things ORDER BY 1") == [("t1", "a"), ("t4", "a")]
    # staging a row outside the scope is refused, and nothing changes
    s3 = stage(tmp_path / "r3", "things", [thing(5, "a", 3)])
    stage(tmp_path / "r3", schemas.RECOMPUTE_SCOPE, [{"person_id": "a", "from_date": 15}])
    with pytest.raises(WarehouseError, match="outside the run's recompute scope"):
        wh.commit(s3, ["things", schemas.RECOMPUTE_SCOPE])
    assert wh.query("SELECT count(*) FROM things") == [(2,)]
    assert not wh.query("SELECT table_name FROM information_schema.tables WHERE table_name = '_recompute_scope'")
    wh.close()


def test_write_rows_applies_one_batch_per_transaction_by_key(tmp_path):
    """The streaming write path: merge by key, repeated keys in a batch collapse to the last row."""
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    wh.init()
    assert wh.write_rows("dead_letters", [dl(1), dl(2), dl(1, reason="wrong_type")]) == 2
    assert wh.write_rows("dead_letters", [dl(2, reason="too_late"), dl(3)]) == 2   # a redelivered batch + a new row
    assert wh.write_rows("dead_letters", []) == 0
    assert wh.query("SELECT dead_letter_id, reason FROM dead_letters ORDER BY 1") == [
        ("id1", "wrong_type"), ("id2", "too_late"), ("id3", "invalid_json")]
    run = {"run_id": "r", "pipeline": "stream", "logical_date": 1, "started_at": 1, "finished_at": 2, "status": "running",
           "runner": "DirectRunner", "touchline_version": "0", "model_version": None, "inputs": [], "metrics": []}
    wh.write_rows("pipeline_runs", [run])
    wh.write_rows("pipeline_runs", [{**run, "status": "succeeded"}])     # insert_if_absent keeps the first
    assert wh.query("SELECT status FROM pipeline_runs") == [("running",)]
    wh.close()


def test_write_rows_failure_leaves_the_table_unchanged(tmp_path):
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    wh.init()
    wh.write_rows("dead_letters", [dl(1)])
    with pytest.raises(Exception):
        wh.write_rows("dead_letters", [dl(2), {**dl(3), "channel": None}])   # NOT NULL violated inside the transaction
    assert wh.query("SELECT dead_letter_id FROM dead_letters") == [("id1",)]
    wh.close()


def test_write_rows_refuses_tables_a_stream_cannot_own(tmp_path, scoped_schema):
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    wh.init()
    with pytest.raises(WarehouseError, match="batch run"):
        wh.write_rows("things", [])
    wh.close()


def test_write_rows_upserts_stream_owned_rows_of_scoped_tables_by_key(tmp_path, scoped_schema):
    """A streaming stage that emits complete rows and never retracts one may merge them by key."""
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    wh.init()
    assert wh.write_rows("things", [{"thing_id": "a", "person_id": "p1", "day": 1},
                                    {"thing_id": "b", "person_id": "p1", "day": 1}], upsert=True) == 2
    assert wh.write_rows("things", [{"thing_id": "a", "person_id": "p1", "day": 2}], upsert=True) == 1
    assert sorted(wh.query("SELECT thing_id, day FROM things")) == [("a", dt.date(1970, 1, 3)), ("b", dt.date(1970, 1, 2))]
    wh.close()
