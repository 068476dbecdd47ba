"""The batch pipeline: files -> parse/validate -> dedup -> identity -> warehouse tables, committed atomically.

    touchline batch --input data/sample --warehouse touchline.duckdb [--logical_date 2026-10-31]
                    [--direct_running_mode=multi_processing --direct_num_workers=2]

``build_pipeline`` composes the transforms and returns the table PCollections (tests use it
directly); ``run`` validates options, reads the previous state (identity graph, erasure list,
touchpoints of the lookback window) as a snapshot at launch, runs the graph, and commits the staged
tables plus a ``pipeline_runs`` row in one warehouse transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from touchline.transforms.context import RunContext
from touchline.transforms.dedup import DeduplicateTouchpoints
from touchline.transforms.identity import OUTPUT_TABLES, STATE_TABLES, Identity, IdentityConfig
from touchline.transforms.parse import DEAD_LETTERS, NAMESPACE, TOUCHPOINTS, ParseTouchpoints
from touchline.transforms.sources import ReadChannelFiles

from . import __version__
from .options import BatchPlan, ConfigError, parse_pipeline_args, resolve_batch

log = logging.getLogger("touchline")

TABLES = ("touchpoints", "dead_letters", *OUTPUT_TABLES)


def camel(name: str) -> str:
    """Stable CamelCase step label part (Dataflow maps steps by label on update)."""
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def build_pipeline(
    p: beam.Pipeline,
    inputs: dict[str, list[str]],
    ctx: RunContext,
    split_bytes: int,
    identity: IdentityConfig | None = None,
    state: dict[str, beam.PTransform] | None = None,
) -> dict[str, beam.PCollection]:
    """Compose the batch graph; returns ``{table name: PCollection of rows}``.

    ``state`` maps the names in ``identity.STATE_TABLES`` to sources of the stored rows (from
    ``Warehouse.read``); missing ones are empty (a first run)."""
    parsed_touchpoints, dead_letters = [], []
    for channel, patterns in inputs.items():
        raw = p | f"Read{camel(channel)}" >> ReadChannelFiles(patterns, split_bytes)
        parsed = raw | f"Parse{camel(channel)}" >> ParseTouchpoints(channel, ctx)
        parsed_touchpoints.append(parsed[TOUCHPOINTS])
        dead_letters.append(parsed[DEAD_LETTERS])
    touchpoints = parsed_touchpoints | "FlattenTouchpoints" >> beam.Flatten()
    deduped = touchpoints | "Deduplicate" >> DeduplicateTouchpoints(ctx)
    dead_letters.append(deduped[DEAD_LETTERS])
    previous = {name: p | f"ReadStored{camel(name)}" >> source for name, source in (state or {}).items()}
    stitched = (
        {TOUCHPOINTS: deduped[TOUCHPOINTS], DEAD_LETTERS: dead_letters | "FlattenDeadLetters" >> beam.Flatten(), **previous}
        | "Identity" >> Identity(ctx, identity or IdentityConfig())
    )
    return {table: stitched[table] for table in TABLES}


def _has_rows(warehouse, table: str, where: str | None) -> bool:
    try:
        return bool(warehouse.query(f"SELECT 1 FROM {table}{f' WHERE {where}' if where else ''} LIMIT 1"))
    except Exception:  # noqa: BLE001 -- cannot tell cheaply: read it
        return True


def read_state(warehouse, staging_dir: str, logical_date: dt.date, identity: IdentityConfig) -> dict[str, beam.PTransform]:
    """Snapshots of the stored state the identity stage needs, taken now (at launch). Empty tables
    (a first run) are not read: a snapshot source costs several pipeline steps even when empty."""
    state = {}
    for name in STATE_TABLES:
        table, where = name, None
        if name == "history":
            if identity.lookback_days == 0:
                continue
            since = logical_date - dt.timedelta(days=identity.lookback_days)
            table, where = "touchpoints", f"event_date >= DATE '{since.isoformat()}'"
        if _has_rows(warehouse, table, where):
            state[name] = warehouse.read(table, staging_dir, where=where)
    return state


@dataclass
class RunResult:
    run_id: str
    warehouse: str
    counters: dict[str, int]
    rows_written: dict[str, int]
    seconds: float
    staging_dir: str
    extra: dict = field(default_factory=dict)


def counters(result) -> dict[str, int]:
    """Committed Touchline counters of a finished pipeline, summed over steps."""
    out: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        out[counter.key.metric.name] = out.get(counter.key.metric.name, 0) + int(value or 0)
    return dict(sorted(out.items()))


def _ensure_runner(options: PipelineOptions) -> None:
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        # Named explicitly: Beam's default would first try to download the Prism runner.
        standard.runner = "DirectRunner"


def _clear(path: str) -> None:
    if FileSystems.exists(path):
        if "://" in path:
            FileSystems.delete([path])
        else:
            shutil.rmtree(path, ignore_errors=True)


def run_plan(plan: BatchPlan, options: PipelineOptions) -> RunResult:
    _ensure_runner(options)
    ctx = RunContext(run_id=plan.run_id, logical_date=plan.logical_date, hash_key_source=plan.hash_key_source)
    warehouse = plan.warehouse
    warehouse.init()
    _clear(plan.staging_dir)
    started = time.time()
    state = read_state(warehouse, plan.staging_dir, plan.logical_date, plan.identity)
    p = beam.Pipeline(options=options)
    tables = build_pipeline(p, plan.inputs, ctx, plan.split_bytes, plan.identity, state)
    for table, rows in tables.items():
        rows | f"Stage{camel(table)}" >> warehouse.stage(table, plan.staging_dir)
    result = p.run()
    state = result.wait_until_finish()
    if state != PipelineState.DONE:
        raise RuntimeError(f"pipeline ended in state {state}; nothing was committed (staging kept at {plan.staging_dir})")
    counts = counters(result)
    finished = time.time()
    run_row = {
        "run_id": plan.run_id,
        "pipeline": "batch",
        "logical_date": ctx.logical_day,
        "started_at": int(started * 1e6),
        "finished_at": int(finished * 1e6),
        "status": "succeeded",
        "runner": options.view_as(StandardOptions).runner,
        "touchline_version": __version__,
        "model_version": None,
        "inputs": [f"{channel}={pattern}" for channel, patterns in plan.inputs.items() for pattern in patterns],
        "metrics": [{"name": k, "value": v} for k, v in counts.items()],
    }
    written = warehouse.commit(plan.staging_dir, tables, rows={"pipeline_runs": [run_row]})
    _clear(plan.staging_dir)
    return RunResult(plan.run_id, warehouse.url, counts, written, finished - started, plan.staging_dir)


def run(argv: list[str], prog: str = "touchline batch") -> RunResult:
    options = parse_pipeline_args(argv, prog)
    plan = resolve_batch(options)
    try:
        return run_plan(plan, options)
    finally:
        plan.warehouse.close()


__all__ = ["build_pipeline", "read_state", "run", "run_plan", "RunResult", "ConfigError", "TABLES", "camel", "counters"]
