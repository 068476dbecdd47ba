
import io


import fastavro
import pytest

from touchline import schemas
from touchline.schemas import bigquery, duckdb as duckdb_ddl
from touchline.schemas.arrow import arrow_schema
from touchline.schemas.model import columns
from touchline.transforms.channels import get as get_channel
from touchline.transforms.errors import Redactor
from touchline.transforms.sources import read_avro_range
from touchline.transforms.validate import Conformer


def test_every_schema_parses_and_tables_are_declared():
    assert {"raw_app_event", "raw_web_event", "raw_support_event", "raw_transaction_event", "touchpoint"} <= set(schemas.names())
    for name in schemas.names():
        schemas.parsed(name)
    assert {"touchpoints", "dead_letters", "pipeline_runs"} <= set(schemas.table_schemas())


def test_generated_ddl_covers_every_column_in_every_target():
    for spec in schemas.table_schemas().values():
        cols = [c.name for c in columns(spec.schema)]
        ddl = duckdb_ddl.create_table(spec)
        assert all(f'"{c}"' in ddl for c in cols)
        assert [f["name"] for f in bigquery.table_fields(spec)] == cols
        assert arrow_schema(spec).names == cols


def test_type_mapping_of_touchpoints():
    spec = schemas.table_schema("touchpoints")
    bq = {f["name"]: f for f in bigquery.table_fields(spec)}
    assert bq["event_time"]["type"] == "TIMESTAMP" and bq["event_time"]["mode"] == "REQUIRED"
    assert bq["event_date"]["type"] == "DATE"
    assert bq["amount"]["type"] == "NUMERIC" and bq["amount"]["mode"] == "NULLABLE"
    assert bq["identifiers"]["mode"] == "REPEATED" and bq["identifiers"]["type"] == "RECORD"
    assert [f["name"] for f in bq["attributes"]["fields"]] == ["key", "value"]
    assert bq["attributes"]["mode"] == "REPEATED"
    assert "description" in bq["event_id"]
    ddl = duckdb_ddl.create_table(spec)
    assert '"amount" DECIMAL(18,2)' in ddl
    assert '"attributes" MAP(VARCHAR, VARCHAR) NOT NULL' in ddl
    assert '"identifiers" STRUCT("kind" VARCHAR, "id_hash" VARCHAR)[] NOT NULL' in ddl


def test_table_metadata_names_real_columns():
    spec = schemas.table_schema("touchpoints")
    assert spec.key == ("event_id",) and spec.partition_by == "event_date" and "person_id" in spec.cluster_by
    bad = {"type": "record", "name": "X", "fields": [{"name": "a", "type": "string"}], "touchline": {"table": "x", "key": ["b"]}}
    with pytest.raises(ValueError, match="unknown column 'b'"):
        schemas.TableSpec("x", bad)


def _older_app_schema():
    """raw_app_event as it was before 'app_version' and 'screen' were added."""
    old = schemas.load("raw_app_event")
    old["fields"] = [f for f in old["fields"] if f["name"] not in ("app_version", "screen")]
    return old


def test_schema_evolution_old_avro_files_stay_readable(tmp_path, hasher):
    """Adding optional fields with defaults keeps files written with the older schema readable."""
    old = _older_app_schema()
    record = {
        "event_id": "e-old", "occurred_at": "2026-10-01T08:00:00Z", "event_type": "app_open",
        "device_id": "dev-1", "platform": "ios", "session_id": None, "customer_id": "C00000001",
        "employee_id": None, "partner_id": None, "email": None, "order_id": None, "survey": None, "properties": {},
    }
    path = tmp_path / "old.avro"
    with open(path, "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(old), [record])
    # plain fastavro schema resolution agrees the new schema can read the old file ...
    with open(path, "rb") as fh:
        resolved = list(fastavro.reader(fh, reader_schema=schemas.parsed("raw_app_event")))
    assert resolved[0]["app_version"] is None and resolved[0]["screen"] is None
    # ... and so does Touchline's own read + validate path.
    (source, payload, error), = list(read_avro_range(str(path), 0, 1 << 62))
    assert error is None
    conformed, unknown = Conformer(schemas.load("raw_app_event"))(payload)
    assert conformed["app_version"] is None and conformed["screen"] is None and unknown == {}
    touchpoint = get_channel("app").to_touchpoint(conformed, unknown, hasher, Redactor(hasher), source)
    assert touchpoint["event_id"] == "e-old" and touchpoint["role"] == "customer"


def test_schema_evolution_new_files_readable_by_old_readers(tmp_path):
    """Forward compatibility: a reader on the old schema ignores the new optional fields."""
    buf = io.BytesIO()
    record = {"event_id": "e", "occurred_at": "2026-10-01T08:00:00Z", "event_type": "app_open", "device_id": "d",
              "app_version": "5.1", "screen": "home"}
    fastavro.writer(buf, schemas.parsed("raw_app_event"), [record])
    buf.seek(0)
    (old_view,) = list(fastavro.reader(buf, reader_schema=fastavro.parse_schema(_older_app_schema())))
    assert "app_version" not in old_view and old_view["event_id"] == "e"


def test_warehouse_adds_new_optional_columns(tmp_path):
    """A table created by an older schema gains the new nullable column on init, data kept."""
    from touchline.transforms.warehouse.duckdb import DuckDBWarehouse

    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    wh.init()
    con = wh._connect()
    con.execute('ALTER TABLE dead_letters DROP COLUMN "event_id"')
    done = wh.init()
    assert "added dead_letters.event_id" in done
    assert "event_id" in [r[0] for r in con.execute("DESCRIBE dead_letters").fetchall()]
    wh.close()

