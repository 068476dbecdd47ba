"""Test scaffolding for the experience stage until identity stitching lands (issue 3).

* :func:`attributed_sample` generates sample data, ingests it with the real batch pipeline into
  DuckDB, and attributes every touchpoint to its *true* person from the generator's ground truth
  (``p_`` + truth person id): a legitimate fixture for testing journeys and scores in isolation,
  never used by production code.
* :func:`run_stage` runs ``ComputeExperience`` on a list of attributed touchpoints with the real
  DirectRunner and the real DuckDB warehouse: it reads the previous state with ``read_state``,
  stages the stage's tables plus the touchpoints (as identity will: merged by event_id) and
  commits them in one transaction -- the same staging + commit path as ``touchline batch``.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import json
import os
import shutil
import tempfile

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions

from touchline import schemas
from touchline.pipelines import batch
from touchline.pipelines.sample_data import GenerateConfig, generate
from touchline.schemas.arrow import arrow_schema
from touchline.schemas.rows import converter
from touchline.transforms import channels
from touchline.transforms.context import RunContext
from touchline.transforms.dedup import content_digest
from touchline.transforms.parse import ParseFn
from touchline.transforms.sources import _UNBOUNDED, read_range
from touchline.transforms.experience import TABLES, ComputeExperience, ExperienceSettings, state_filters
from touchline.transforms.packing import KeyTable
from touchline.transforms.scoring.model import load_model
from touchline.transforms.warehouse.duckdb import DuckDBWarehouse
from touchline.transforms.warehouse.staging import ReadSnapshot

from .conftest import RUNNER
EPOCH = dt.date(1970, 1, 1)


def truth_person(person: str) -> str:
    return "p_" + person


@functools.cache
def attributed_sample(persons: int, days: int, seed: int) -> tuple[str, tuple[dict, ...], tuple[dict, ...]]:
    """(folder, attributed touchpoints sorted by event_id, truth persons) of a generated sample,
    cached per process (the folder is removed at exit)."""
    root = tempfile.mkdtemp(prefix="touchline-experience-")
    atexit.register(shutil.rmtree, root, True)
    data = os.path.join(root, "input")
    generate(GenerateConfig(out_dir=data, persons=persons, days=days, seed=seed))
    warehouse = os.path.join(root, "ingest.duckdb")
    batch.run(["--input", data, "--warehouse", warehouse, "--hash_key_source", "demo",
               "--logical_date", (dt.date(2026, 10, 1) + dt.timedelta(days=days - 1)).isoformat()])
    owner, truth = _attribution(data)
    wh = DuckDBWarehouse(warehouse)
    spec = schemas.table_schema("touchpoints")
    convert = converter(spec)
    cols = ", ".join(f'"{c}"' for c in spec.columns)
    con = wh._connect()
    cursor = con.execute(f"SELECT {cols} FROM touchpoints ORDER BY event_id")
    names = [d[0] for d in cursor.description]
    rows = []
    for values in cursor.fetchall():
        row = convert(dict(zip(names, values)))
        row["person_id"] = owner[row["event_id"]]
        rows.append(row)
    wh.close()
    return root, tuple(rows), truth


def _attribution(data: str) -> tuple[dict[str, str], tuple[dict, ...]]:
    owner = {}
    with open(os.path.join(data, "truth", "records.jsonl"), encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["event_id"] is not None and rec["status"] in ("good", "conflict", "duplicate"):
                owner[rec["event_id"]] = truth_person(rec["person"])
    with open(os.path.join(data, "truth", "persons.jsonl"), encoding="utf-8") as fh:
        truth = tuple(json.loads(line) for line in fh)
    return owner, truth


@functools.cache
def parsed_sample(persons: int, days: int, seed: int) -> tuple[tuple[dict, ...], tuple[dict, ...]]:
    """Like :func:`attributed_sample` but faster for larger samples: the same ``ParseFn`` and
    dedup rule (smallest content digest wins) applied record by record without a runner.
    ``tests/test_experience.py`` checks it gives exactly what the Beam ingest gives."""
    root = tempfile.mkdtemp(prefix="touchline-parsed-")
    atexit.register(shutil.rmtree, root, True)
    data = os.path.join(root, "input")
    generate(GenerateConfig(out_dir=data, persons=persons, days=days, seed=seed))
    owner, truth = _attribution(data)
    ctx = RunContext(run_id="parsed-sample", logical_date=dt.date(2026, 10, 1), hash_key_source="demo")
    best: dict[str, tuple[str, str, dict]] = {}
    for channel in channels.canonical():
        fn = ParseFn(channel, ctx)
        fn.setup()
        fn.start_bundle()
        for name in sorted(os.listdir(os.path.join(data, channel))):
            for record in read_range((os.path.join(data, channel, name), 0, _UNBOUNDED)):
                for out in fn.process(record):
                    if isinstance(out, beam.pvalue.TaggedOutput):
                        continue
                    key = (content_digest(out), out["source"])
                    kept = best.get(out["event_id"])
                    if kept is None or key < kept[:2]:
                        best[out["event_id"]] = (*key, out)
    rows = []
    for event_id in sorted(best):
        row = best[event_id][2]
        row["person_id"] = owner[event_id]
        rows.append(row)
    return tuple(rows), truth


def day_of(d: int) -> dt.date:
    return EPOCH + dt.timedelta(days=d)


def run_stage(warehouse_path: str, touchpoints: list[dict], logical_date: dt.date, staging_dir: str, *,
              model=None, settings: ExperienceSettings | None = None, scope: list[dict] | None = None) -> dict[str, int]:
    """One run of the experience stage over ``touchpoints`` into the DuckDB file; returns rows written."""
    model = model or load_model()
    settings = settings or ExperienceSettings()
    shutil.rmtree(staging_dir, ignore_errors=True)
    wh = DuckDBWarehouse(warehouse_path)
    try:
        wh.init()
        ctx = RunContext(run_id=f"test-{logical_date:%Y%m%d}", logical_date=logical_date, hash_key_source="demo")
        p = beam.Pipeline(runner=RUNNER, options=PipelineOptions([]))
        state = {name: p | f"Read{name}" >> wh.read(table, staging_dir, where)
                 for name, (table, where) in state_filters(logical_date, model, settings).items()}
        # the run's touchpoints enter as a Parquet file read by the warehouse's own snapshot reader
        # (beam.Create would infer a type from, pickle and compress every row into the graph)
        os.makedirs(staging_dir, exist_ok=True)
        source = os.path.join(staging_dir, "_input_touchpoints.parquet")
        pq.write_table(pa.Table.from_pylist(list(touchpoints), schema=arrow_schema(schemas.table_schema("touchpoints"))), source)
        tps = p | "Touchpoints" >> ReadSnapshot("touchpoints", [source]) | "KeyRun" >> beam.ParDo(KeyTable("event_id", ctx.shuffle))
        # what identity hands on as stored: the stored touchpoints of the read window this run does not have
        window = dt.date(1970, 1, 1) + dt.timedelta(days=settings.window_start(ctx.logical_day, model))
        run_ids = frozenset(tp["event_id"] for tp in touchpoints)
        stored = (p | "ReadStored" >> wh.read("touchpoints", staging_dir, f"event_date >= DATE '{window.isoformat()}'")
                  | "NotInRun" >> beam.Map(lambda t: t.filter(pc.invert(pc.is_in(t.column("event_id"), value_set=pa.array(sorted(run_ids), pa.string())))))
                  | "KeyStored" >> beam.ParDo(KeyTable("event_id", ctx.shuffle)))
        inputs = {"touchpoints": tps, "stored": stored, **state}
        if scope is not None:
            inputs["recompute_scope"] = p | "IdentityScope" >> beam.Create([[(r["person_id"], r["from_date"]) for r in scope]], reshuffle=False)
        out = inputs | "Experience" >> ComputeExperience(ctx, model, settings)
        tps | "TouchpointFiles" >> beam.MapTuple(lambda key, blob: (f"run-{key:05d}", blob)) | "StageTouchpoints" >> wh.stage("touchpoints", staging_dir)
        for table in (*TABLES, "dead_letters"):
            out[table] | f"Stage{table.title().replace('_', '')}" >> wh.stage(table, staging_dir)
        p.run().wait_until_finish()
        return wh.commit(staging_dir, ["touchpoints", *TABLES, "dead_letters"])
    finally:
        wh.close()
        shutil.rmtree(staging_dir, ignore_errors=True)


def dump(warehouse_path: str, tables=("journeys", "person_scores_daily", "person_scores_current", "survey_aggregates")) -> dict[str, list[dict]]:
    """Every row of the experience tables in datum form, sorted by key."""
    wh = DuckDBWarehouse(warehouse_path)
    try:
        out = {}
        con = wh._connect()
        for table in tables:
            spec = schemas.table_schema(table)
            convert = converter(spec)
            cols = ", ".join(f'"{c}"' for c in spec.columns)
            keys = ", ".join(f'"{k}"' for k in spec.key)
            cursor = con.execute(f'SELECT {cols} FROM "{table}" ORDER BY {keys}')
            names = [d[0] for d in cursor.description]
            out[table] = [convert(dict(zip(names, v))) for v in cursor.fetchall()]
        return out
    finally:
        wh.close()


def load_touchpoints(warehouse_path: str, rows) -> int:
    """Merge attributed touchpoints into the warehouse's ``touchpoints`` table (as identity will)."""
    wh = DuckDBWarehouse(warehouse_path)
    try:
        wh.init()
        empty = tempfile.mkdtemp(prefix="touchline-nostaging-")
        try:
            return wh.commit(empty, [], rows={"touchpoints": list(rows)})["touchpoints"]
        finally:
            shutil.rmtree(empty, ignore_errors=True)
    finally:
        wh.close()


def at(text: str) -> int:
    """'2026-10-05 14:30' (UTC) -> microseconds since the epoch."""
    moment = dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)


def touchpoint(event_id: str, when: str, channel: str, event_type: str, *, person: str | None = "p1",
               role: str = "customer", ticket_id: str | None = None, order_id: str | None = None,
               attributes: dict | None = None, survey: tuple[str, int] | None = None) -> dict:
    """A crafted attributed touchpoint row (datum form)."""
    time = at(when)
    return {
        "event_id": event_id, "channel": channel, "event_type": event_type, "event_time": time,
        "event_date": time // 86_400_000_000, "person_id": person, "role": role, "identifiers": [],
        "session_id": None, "ticket_id": ticket_id, "order_id": order_id,
        "survey_kind": survey[0] if survey else None, "survey_score": survey[1] if survey else None,
        "amount": None, "currency": None, "attributes": dict(attributes or {}), "source": f"test@{event_id}",
    }
