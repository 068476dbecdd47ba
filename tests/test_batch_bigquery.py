"""The batch pipeline with BigQuery (the bqemulator, started by the suite): as warehouse, the same rows
as the DuckDB run on the same input for every table in schemas/, idempotent re-runs; as source, raw
events read from a BigQuery table over a date range give the same touchpoints as the files."""

from __future__ import annotations

import collections
import datetime as dt
import glob
import json

import duckdb
import pytest

from touchline import schemas
from touchline.pipelines import batch
from touchline.pipelines.options import ConfigError, parse_pipeline_args, resolve_tables
from touchline.pipelines.sample_data import GenerateConfig, generate
from touchline.schemas.bigquery import field as bq_field
from touchline.schemas.model import columns
from touchline.schemas.rows import converter
from touchline.transforms.sources import read_avro_range

from .emulators import PROJECT, new_dataset

pytestmark = pytest.mark.integration

BASE_FLAGS = ["--hash_key_source", "demo", "--logical_date", "2026-10-08"]
TIMING = ("started_at", "finished_at")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("bq_sample")
    generate(GenerateConfig(out_dir=str(out), persons=150, days=7, seed=5, malformed_rate=0.05))
    return out


def normalized(table: str, rows: list[dict]) -> list[dict]:
    spec = schemas.table_schema(table)
    convert = converter(spec)
    out = [convert(r) for r in rows]
    return sorted(out, key=lambda r: json.dumps([r[k] for k in spec.key], default=str))


def dump_duckdb(path: str) -> dict[str, list[dict]]:
    con = duckdb.connect(path, read_only=True)
    try:
        out = {}
        for table in schemas.table_schemas():
            cur = con.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cur.description]
            out[table] = normalized(table, [dict(zip(names, row)) for row in cur.fetchall()])
        return out
    finally:
        con.close()


def dump_bigquery(emulator, dataset: str) -> dict[str, list[dict]]:
    client = emulator.client()
    return {table: normalized(table, [dict(r) for r in client.query(f"SELECT * FROM `{PROJECT}.{dataset}.{table}`").result()])
            for table in schemas.table_schemas()}


def without_timing(tables: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {t: [{k: v for k, v in r.items() if k not in TIMING} for r in rows] for t, rows in tables.items()}


@pytest.fixture(scope="module")
def duckdb_run(sample, tmp_path_factory):
    warehouse = str(tmp_path_factory.mktemp("bq_ref") / "touchline.duckdb")
    result = batch.run(["--input", str(sample), "--warehouse", warehouse, *BASE_FLAGS])
    return dump_duckdb(warehouse), result


@pytest.fixture(scope="module")
def bigquery_run(sample, bigquery_emulator, tmp_path_factory):
    dataset = new_dataset("batch")
    url = bigquery_emulator.url(dataset)
    from touchline.transforms.warehouse import open_warehouse

    wh = open_warehouse(url)
    wh.init()  # what `touchline warehouse init` does; a batch run refuses a missing dataset
    wh.close()
    staging = str(tmp_path_factory.mktemp("bq_staging"))
    argv = ["--input", str(sample), "--warehouse", f"bigquery://{PROJECT}.{dataset}", "--bigquery_endpoint",
            bigquery_emulator.endpoint, "--bigquery_storage_endpoint", bigquery_emulator.storage_endpoint,
            "--staging_dir", staging, *BASE_FLAGS]
    result = batch.run(argv)
    return dataset, argv, result


def test_every_table_matches_the_duckdb_run(duckdb_run, bigquery_run, bigquery_emulator):
    expected, ref = duckdb_run
    dataset, _, result = bigquery_run
    got = dump_bigquery(bigquery_emulator, dataset)
    assert set(got) == set(schemas.table_schemas())  # tables added to schemas/ are compared too
    assert result.run_id == ref.run_id and result.rows_written == ref.rows_written
    assert {t: len(r) for t, r in got.items()} == {t: len(r) for t, r in expected.items()}
    assert without_timing(got) == without_timing(expected)
    assert sum(len(r) for r in got.values()) > 1000


def test_rerun_into_bigquery_leaves_every_table_identical(bigquery_run, bigquery_emulator):
    dataset, argv, first = bigquery_run
    before = dump_bigquery(bigquery_emulator, dataset)
    again = batch.run(argv)
    assert again.run_id == first.run_id
    assert dump_bigquery(bigquery_emulator, dataset) == before  # pipeline_runs keeps the first row, timing included
    client = bigquery_emulator.client()
    assert not [t.table_id for t in client.list_tables(f"{PROJECT}.{dataset}") if t.table_id.startswith("_stage_")]


def test_batch_refuses_a_missing_dataset_with_the_fix(sample, bigquery_emulator, tmp_path):
    with pytest.raises(ConfigError, match="(?s)does not exist.*touchline warehouse init"):
        batch.run(["--input", str(sample), "--warehouse", bigquery_emulator.url(new_dataset("absent")),
                   "--staging_dir", str(tmp_path), *BASE_FLAGS])


# -- raw events from a BigQuery table -----------------------------------------------------------

FROM, TO = dt.date(2026, 10, 2), dt.date(2026, 10, 5)


def _day(occurred_at) -> dt.date | None:
    try:
        return dt.datetime.fromisoformat(occurred_at).astimezone(dt.timezone.utc).date()
    except (TypeError, ValueError):
        return None


@pytest.fixture(scope="module")
def app_table(sample, bigquery_emulator):
    """The app channel's decoded Avro records in a BigQuery table (raw schema + a partition date)."""
    from google.cloud import bigquery

    records = []
    for path in sorted(glob.glob(str(sample / "app" / "*.avro"))):
        records += [payload for _, payload, error in read_avro_range(path, 0, 1 << 62) if error is None]
    # one date per event id (conflicting duplicates stay together); unparseable timestamps -> FROM
    day_of = {}
    for r in records:
        day_of.setdefault(r["event_id"], _day(r["occurred_at"]) or FROM)
    dataset = new_dataset("raw")
    client = bigquery_emulator.client()
    client.create_dataset(dataset)
    fields = [bigquery.SchemaField.from_api_repr(bq_field(c)) for c in columns(schemas.load("raw_app_event"))]
    table = bigquery.Table(f"{PROJECT}.{dataset}.app_events", schema=[*fields, bigquery.SchemaField("event_date", "DATE", "REQUIRED")])
    table.time_partitioning = bigquery.TimePartitioning(field="event_date")
    client.create_table(table)
    rows = [{**r, "properties": [{"key": k, "value": v} for k, v in (r.get("properties") or {}).items()],
             "event_date": day_of[r["event_id"]].isoformat()} for r in records]
    for i in range(0, len(rows), 500):
        assert client.insert_rows_json(table, rows[i:i + 500]) == []
    in_range = {r["event_id"] for r in records if FROM <= day_of[r["event_id"]] <= TO}
    n_in_range = sum(1 for r in records if r["event_id"] in in_range)
    return f"{PROJECT}.{dataset}.app_events", in_range, n_in_range, len(records)


def test_app_channel_read_from_a_bigquery_table_matches_the_files(app_table, duckdb_run, bigquery_emulator, tmp_path):
    table, in_range, n_in_range, n_total = app_table
    expected, _ = duckdb_run
    warehouse = str(tmp_path / "from_table.duckdb")
    result = batch.run(["--app_table", table, "--from_date", str(FROM), "--to_date", str(TO), "--channels", "app",
                        "--bigquery_endpoint", bigquery_emulator.endpoint,
                        "--bigquery_storage_endpoint", bigquery_emulator.storage_endpoint,
                        "--warehouse", warehouse, *BASE_FLAGS])
    assert 0 < n_in_range < n_total  # the date range filters server-side
    assert result.counters["app.read"] == n_in_range
    got = dump_duckdb(warehouse)
    # person_id depends on everything else in the run (the files run stitched all channels and days):
    # compare what the source and the parser produce.
    strip = lambda rows: sorted((json.dumps({k: v for k, v in r.items() if k not in ("source", "person_id")},  # noqa: E731
                                            sort_keys=True, default=str) for r in rows))
    want_tp = [r for r in expected["touchpoints"] if r["channel"] == "app" and r["event_id"] in in_range]
    assert strip(got["touchpoints"]) == strip(want_tp)
    assert all(r["source"].startswith(f"bq:{table}@") for r in got["touchpoints"])
    dead = lambda rows: collections.Counter((r["event_id"], r["reason"]) for r in rows)  # noqa: E731
    want_dead = [r for r in expected["dead_letters"] if r["channel"] == "app" and r["event_id"] in in_range]
    assert dead(got["dead_letters"]) == dead(want_dead) and want_dead
    (run,) = got["pipeline_runs"]
    assert run["inputs"] == [f"app=bq:{table}[{FROM}..{TO}]"]


def test_table_inputs_are_checked_at_launch(app_table, bigquery_emulator, sample):
    table, *_ = app_table
    endpoint = ["--bigquery_endpoint", bigquery_emulator.endpoint]

    def resolve(*flags):
        return resolve_tables(parse_pipeline_args([*flags, *endpoint], "test"), ["app", "web"], dt.date(2026, 10, 3))

    tables, conn = resolve("--app_table", table)
    assert tables["app"].date_column == "event_date" and tables["app"].from_date == tables["app"].to_date == dt.date(2026, 10, 3)
    assert conn.endpoint == bigquery_emulator.endpoint
    with pytest.raises(ConfigError, match=r"(?s)does not exist.*--web_table"):
        resolve("--web_table", f"{PROJECT}.nowhere.web_events")
    with pytest.raises(ConfigError, match=r"does not match the web raw schema.*column cookie_id \(STRING\) is missing"):
        resolve("--web_table", table)
    with pytest.raises(ConfigError, match="date column occurred_at .* is STRING"):
        resolve("--app_table", table, "--table_date_column", "occurred_at")
    with pytest.raises(ConfigError, match="is before --from_date"):
        resolve("--app_table", table, "--from_date", "2026-10-05", "--to_date", "2026-10-01")
    with pytest.raises(ConfigError, match="PROJECT.DATASET.TABLE"):
        resolve("--app_table", "just_a_table")


def test_documented_example_queries_run_on_bigquery(bigquery_run, bigquery_emulator):
    """docs/tables.md's examples are real SQL: each one whose tables exist runs against the run's dataset."""
    from touchline.pipelines.docs import EXAMPLES
    from touchline.transforms.warehouse import open_warehouse

    dataset, _, _ = bigquery_run
    wh = open_warehouse(bigquery_emulator.url(dataset))
    ran = 0
    try:
        for example in EXAMPLES:
            if not set(example.requires) <= set(schemas.table_schemas()):
                continue  # documented ahead of a table being added in parallel
            rows = wh.query(example.sql.replace("CURRENT_DATE()", "DATE '2026-10-08'"))
            assert rows, example.title
            ran += 1
    finally:
        wh.close()
    assert ran >= 4


def test_late_login_beyond_the_experience_window_moves_the_same_touchpoints_as_on_duckdb(bigquery_emulator, tmp_path):
    """The second, moved-only read of stored touchpoints (``history_moved``: the identity lookback
    before the experience window) through BigQuery scratch tables and UNNEST: the late login of
    2026-10-31 re-attributes the cookie's touchpoint of 2026-10-01 exactly as the DuckDB run does."""
    from touchline.transforms.warehouse import open_warehouse

    from .test_identity_lifecycle import run_batch
    from .test_incremental import _inputs

    day1, day2 = _inputs(tmp_path / "input")
    dataset = new_dataset("moved")
    url = bigquery_emulator.url(dataset)
    wh = open_warehouse(url)
    wh.init()
    wh.close()
    flags = ["--hash_key_source", "demo", "--identity_degree_caps", "device_id=3"]
    bq = [*flags, "--bigquery_endpoint", bigquery_emulator.endpoint, "--bigquery_storage_endpoint",
          bigquery_emulator.storage_endpoint, "--staging_dir", str(tmp_path / "staging")]
    local = str(tmp_path / "ref.duckdb")
    results = {}
    for name, warehouse, extra in (("bigquery", f"bigquery://{PROJECT}.{dataset}", bq), ("duckdb", local, flags)):
        run_batch(warehouse, "2026-10-20", day1, extra)
        results[name] = run_batch(warehouse, "2026-10-31", day2, extra)
    assert results["bigquery"].counters["state.history_moved.rows"] == results["duckdb"].counters["state.history_moved.rows"] >= 1
    # the first read, set apart by the run's event ids (one query into a scratch table, read twice)
    for name, least in (("state.unreplayed.rows", 1), ("state.history.rows", 0)):
        assert results["bigquery"].counters.get(name, 0) == results["duckdb"].counters.get(name, 0) >= least, name
    wh = open_warehouse(url)
    try:
        persons = dict(wh.query("SELECT event_id, person_id FROM touchpoints WHERE event_date >= DATE '1970-01-01'"))
    finally:
        wh.close()
    con = duckdb.connect(local, read_only=True)
    try:
        assert persons == dict(con.execute("SELECT event_id, person_id FROM touchpoints").fetchall())
    finally:
        con.close()
    assert persons["w-old"] == persons["a-1"] is not None


# -- erasure (last in this module: it changes the shared dataset) -----------------------------------

def test_erase_on_bigquery_removes_the_person_everywhere_and_a_replay_keeps_them_out(bigquery_run, bigquery_emulator):
    from touchline.pipelines.cli import main
    from touchline.transforms.warehouse import open_warehouse

    dataset, argv, _ = bigquery_run
    wh = open_warehouse(bigquery_emulator.url(dataset))
    try:
        (person, hashes), = wh.query(
            "SELECT person_id, ARRAY_AGG(id_hash) FROM identity_map WHERE person_id IS NOT NULL "
            "GROUP BY person_id ORDER BY COUNT(*) DESC, person_id LIMIT 1")
        assert main(["erase", "--warehouse", bigquery_emulator.url(dataset), "--hash_key_source", "demo",
                     "--person_id", person]) == 0
        by_person = [s for s in schemas.table_schemas().values() if "person_id" in s.erase_by]
        assert {"touchpoints", "journeys", "person_scores_daily", "identity_map"} <= {s.name for s in by_person}
        for spec in by_person:
            part = f" AND {spec.partition_by} >= DATE '1970-01-01'" if spec.require_partition_filter else ""
            assert wh.query(f"SELECT COUNT(*) FROM {spec.name} WHERE person_id = ?{part}", [person]) == [(0,)], spec.name
        listed = {h for (h,) in wh.query("SELECT id_hash FROM erasure_requests")}
        assert set(hashes) <= listed
        replay = batch.run(argv)  # the same inputs again: the erased person's events are dropped, counted
        assert sum(v for k, v in replay.counters.items() if k.endswith(".erased")) > 0
        rows = wh.query("SELECT COUNT(*) FROM touchpoints t, UNNEST(t.identifiers) AS i "
                        "WHERE t.event_date >= DATE '1970-01-01' AND i.id_hash IN UNNEST(?)", [list(hashes)])
        assert rows == [(0,)]
    finally:
        wh.close()
