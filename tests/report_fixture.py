"""A small warehouse with every table the report reads, built with the real pipeline.

Journeys and scores come from the experience stage run by ``tests/experience_harness.py`` on a
generated sample (identity stitching is wired into ``touchline batch`` by issue 3); identity rows
are derived from the touchpoints' identifiers. The identity tables are created from their Avro
schemas when this build has them, else with the columns the report reads (the planned names:
identity_map(id_hash, kind, person_id), person_merges(old_person_id, new_person_id),
identity_quarantine(id_hash, kind, reason)).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import tempfile
import atexit

from touchline import schemas
from touchline.schemas.model import columns

from .experience_harness import attributed_sample, day_of, run_stage

IDENTITY_DDL = {
    "identity_map": "CREATE TABLE identity_map (id_hash VARCHAR, kind VARCHAR, person_id VARCHAR)",
    "person_merges": "CREATE TABLE person_merges (old_person_id VARCHAR, new_person_id VARCHAR)",
    "identity_quarantine": "CREATE TABLE identity_quarantine (id_hash VARCHAR, kind VARCHAR, reason VARCHAR)",
}
_PLACEHOLDER = {"string": "x", "int": 0, "float": 0.0, "bool": False, "timestamp": 0, "date": 0, "array": [], "map": {}}


def identity_rows(touchpoints) -> dict[str, list[dict]]:
    seen: dict[str, dict] = {}
    for tp in touchpoints:
        for ident in tp["identifiers"]:
            seen.setdefault(ident["id_hash"], {"id_hash": ident["id_hash"], "kind": ident["kind"], "person_id": tp["person_id"]})
    ids = sorted(seen.values(), key=lambda r: r["id_hash"])
    persons = sorted({r["person_id"] for r in ids})
    return {
        "identity_map": ids,
        "person_merges": [{"old_person_id": f"p_old{i}", "new_person_id": persons[i]} for i in range(3)],
        "identity_quarantine": [{"id_hash": ids[0]["id_hash"], "kind": ids[0]["kind"], "reason": "degree_cap"},
                                {"id_hash": ids[1]["id_hash"], "kind": ids[1]["kind"], "reason": "blocklisted"}],
    }


def complete(table: str, rows: list[dict]) -> list[dict]:
    """Rows with every column of the table's schema (placeholders for the ones the report ignores)."""
    spec = schemas.table_schema(table)
    out = []
    for row in rows:
        full = {}
        for col in columns(spec.schema):
            full[col.name] = row.get(col.name, None if col.nullable else _PLACEHOLDER.get(col.kind, "x"))
        out.append(full)
    return out


def has_identity_schemas() -> bool:
    return "identity_map" in schemas.table_schemas()


def add_identity_duckdb(path: str, touchpoints) -> None:
    from touchline.transforms.warehouse.duckdb import DuckDBWarehouse

    rows = identity_rows(touchpoints)
    wh = DuckDBWarehouse(path)
    try:
        if has_identity_schemas():
            wh.init()
            empty = tempfile.mkdtemp()
            wh.commit(empty, [], rows={t: complete(t, r) for t, r in rows.items()})
            shutil.rmtree(empty, ignore_errors=True)
            return
        con = wh._connect()
        for table, ddl in IDENTITY_DDL.items():
            con.execute(ddl)
            for row in rows[table]:
                cols = list(row)
                con.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                            [row[c] for c in cols])
    finally:
        wh.close()


@functools.cache
def report_warehouse() -> tuple[str, tuple[dict, ...], dt.date]:
    """(DuckDB path, attributed touchpoints, last day) of a small warehouse with every report table; cached."""
    root, rows, _truth = attributed_sample(30, 5, 11)
    folder = tempfile.mkdtemp(prefix="touchline-report-")
    atexit.register(shutil.rmtree, folder, True)
    path = os.path.join(folder, "report.duckdb")
    shutil.copy(os.path.join(root, "ingest.duckdb"), path)
    last = day_of(max(r["event_date"] for r in rows))
    run_stage(path, list(rows), last, os.path.join(folder, "staging"))
    add_identity_duckdb(path, rows)
    return path, rows, last
