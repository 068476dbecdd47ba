"""The batch pipeline: files and/or BigQuery tables -> parse/validate -> dedup -> identity ->
journeys and scores -> warehouse tables, committed atomically.

    touchline batch --input data/sample --warehouse touchline.duckdb [--logical_date 2026-10-31]
                    [--direct_running_mode=multi_processing --direct_num_workers=2]

``build_pipeline`` composes the transforms and returns the table PCollections (tests use it
directly); ``run`` validates options, reads the previous state (identity graph, erasure list,
touchpoints of the lookback windows, stored scores) as a snapshot at launch, runs the graph, and
commits the staged tables plus a ``pipeline_runs`` row in one warehouse transaction.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import gc
import logging
import shutil
import time
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from touchline import schemas
from touchline.transforms.bigquery_source import ReadBigQueryTable
from touchline.transforms.context import RunContext
from touchline.transforms.dedup import DeduplicateTouchpoints
from touchline.transforms.experience import TABLES as EXPERIENCE_TABLES
from touchline.transforms.experience import ComputeExperience, ExperienceSettings
from touchline.transforms.experience import state_filters as experience_state_filters
from touchline.transforms.labels import camel
from touchline.transforms.identity import OUTPUT_TABLES, Identity, IdentityConfig
from touchline.transforms.scoring.model import ScoringModel
from touchline.transforms.batches import CHUNK_ROWS
from touchline.transforms.parse import DEAD_LETTERS, NAMESPACE, TOUCHPOINTS, ParseSplits
from touchline.transforms.packing import KeyTable
from touchline.transforms.sources import ReadSources
from touchline.transforms.warehouse.state import UNREPLAYED, ReadStoredState, StateRequest

from . import __version__
from .experience_summary import summary_sections
from .options import BatchOptions, BatchPlan, ConfigError, parse_pipeline_args, resolve_batch
from .runners import batch_pipeline

log = logging.getLogger("touchline")

SCOPE = schemas.RECOMPUTE_SCOPE
IDENTITY_TABLES = tuple(t for t in OUTPUT_TABLES if t != SCOPE)
#: Everything a batch run stages (and commits in one transaction).
TABLES = ("touchpoints", "dead_letters", *IDENTITY_TABLES, *EXPERIENCE_TABLES)


def _record_batches(element, source: str):
    """A batch of raw records of a table read -> ``(source, records)`` for ``ParseSplits``."""
    return source, list(element)


def build_pipeline(
    p: beam.Pipeline,
    inputs: dict[str, list[str]],
    ctx: RunContext,
    split_bytes: int,
    identity: IdentityConfig | None = None,
    state: dict[str, beam.PTransform] | None = None,
    tables: dict[str, ReadBigQueryTable] | None = None,
    model: ScoringModel | None = None,
    experience: ExperienceSettings | None = None,
    stored: beam.PTransform | None = None,
) -> dict[str, beam.PCollection]:
    """Compose the batch graph; returns ``{table name: PCollection of (file key, batch)}`` -- a
    batch is an Arrow table, packed bytes of one, or a list of rows -- ready for ``stage_tables``.

    ``inputs`` are file patterns per source, ``tables`` BigQuery reads per channel (either or both).
    ``state`` maps names of stored inputs read at launch (``erasure_requests``,
    ``history_survey_days``) to their sources (``Warehouse.read``: Arrow tables); ``stored`` is the
    step that reads the rest once the run's keys are known (``ReadStoredState``, its names those of
    ``identity.STATE_TABLES`` and the experience stage's ``history_*``); missing state is empty (a
    first run). Without a ``model`` the graph stops after identity (used by tests of the earlier stages)."""
    identity = identity or IdentityConfig()
    parsed, dead_letters = [], []
    if inputs:
        splits = p | "ReadSources" >> ReadSources(inputs, split_bytes)
        out = splits | "Parse" >> beam.ParDo(ParseSplits(ctx)).with_outputs(DEAD_LETTERS, main=TOUCHPOINTS)
        parsed.append(out[TOUCHPOINTS])
        dead_letters.append(out[DEAD_LETTERS])
    for channel, read in (tables or {}).items():
        label = camel(channel)
        out = (
            p
            | f"Read{label}Table" >> read
            | f"Batch{label}Records" >> beam.BatchElements(min_batch_size=1000, max_batch_size=CHUNK_ROWS)
            | f"Source{label}" >> beam.Map(_record_batches, channel)
            | f"Parse{label}Table" >> beam.ParDo(ParseSplits(ctx)).with_outputs(DEAD_LETTERS, main=TOUCHPOINTS)
        )
        parsed.append(out[TOUCHPOINTS])
        dead_letters.append(out[DEAD_LETTERS])
    keyed = parsed[0] if len(parsed) == 1 else parsed | "FlattenSources" >> beam.Flatten()
    deduped = keyed | "Deduplicate" >> DeduplicateTouchpoints(ctx)
    dead_letters.append(deduped[DEAD_LETTERS])
    previous = {name: p | f"ReadStored{camel(name)}" >> source for name, source in (state or {}).items()}
    moved = None
    if stored is not None:
        previous.update(deduped[TOUCHPOINTS] | "ReadStoredState" >> stored)
        moved = stored.moved_history()
    history = {name: previous.pop(name) for name in list(previous) if name.startswith("history_")}
    stitched = (
        {TOUCHPOINTS: deduped[TOUCHPOINTS], DEAD_LETTERS: dead_letters | "FlattenDeadLetters" >> beam.Flatten(), **previous}
        | "Identity" >> Identity(ctx, identity, history_from=ctx.logical_day - identity.lookback_days, moved_history=moved)
    )
    touchpoints = stitched[TOUCHPOINTS]
    out = {table: stitched[table] for table in ("dead_letters", *IDENTITY_TABLES)}
    out["touchpoints"] = touchpoints | "TouchpointFiles" >> beam.MapTuple(lambda key, blob: (f"attributed-{key:05d}", blob))
    if model is None:
        out[SCOPE] = stitched[SCOPE]
        return out
    kept = [stitched["stored"]] if "stored" in stitched else []
    if "history_surveys" in history:  # other persons' answers of the read window: for the survey aggregates only
        kept.append(history.pop("history_surveys") | "KeySurveyHistory" >> beam.ParDo(KeyTable("event_id", ctx.shuffle)))
    if kept:
        history["stored"] = kept[0] if len(kept) == 1 else kept | "AllStored" >> beam.Flatten()
    scored = (
        {"touchpoints": touchpoints, "recompute_scope": stitched["scopes"], **history}
        | "Experience" >> ComputeExperience(ctx, model, experience)
    )
    # The experience stage's scope already includes identity's rows (adjusted): stage only it.
    out.update({table: scored[table] for table in EXPERIENCE_TABLES})
    out[DEAD_LETTERS] = (out[DEAD_LETTERS], scored[DEAD_LETTERS]) | "AllDeadLetters" >> beam.Flatten()
    return out


def _has_rows(warehouse, table: str, where: str | None) -> bool:
    try:
        return bool(warehouse.query(f"SELECT 1 FROM {table}{f' WHERE {where}' if where else ''} LIMIT 1"))
    except Exception:  # noqa: BLE001 -- cannot tell cheaply: read it
        return True


def history_since(logical_date: dt.date, identity: IdentityConfig, model: ScoringModel | None,
                  settings: ExperienceSettings | None) -> dt.date | None:
    """The first day of stored touchpoints a run reads (one read serves both stages): identity's
    lookback (re-attribution) and the experience stage's read window (journeys and scores)."""
    days = []
    if identity.lookback_days > 0:
        days.append(logical_date - dt.timedelta(days=identity.lookback_days))
    if model is not None:
        logical_day = (logical_date - dt.date(1970, 1, 1)).days
        days.append(dt.date(1970, 1, 1) + dt.timedelta(days=(settings or ExperienceSettings()).window_start(logical_day, model)))
    return min(days) if days else None


#: stored tables read at launch, whole (small): the erasure list and the survey days already stored
AT_LAUNCH = ("erasure_requests", "history_survey_days")


def state_request(warehouse, logical_date: dt.date, identity: IdentityConfig, model: ScoringModel | None,
                  settings: ExperienceSettings | None, mode: str = "affected") -> StateRequest:
    """What this run reads of the stored state once its keys are known (see
    ``touchline.transforms.warehouse.state``): reads of tables without rows in their window are
    left out (a first run reads nothing, and its graph has none of the steps that only serve them)."""
    logical_day = (logical_date - dt.date(1970, 1, 1)).days
    since = history_since(logical_date, identity, model, settings)
    settings = settings or ExperienceSettings()
    window = settings.window_start(logical_day, model) if model is not None else None
    earliest = settings.earliest_day(logical_day) if model is not None else None
    checks = {"identity_map": ("identity_map", None), "identity_links": ("identity_links", None),
              "person_merges": ("person_merges", None)}
    if mode == "affected":
        checks["identity_excluded"] = ("identity_map", "status = 'quarantined'")
    if since is not None:
        checks["history"] = ("touchpoints", f"event_date >= DATE '{since.isoformat()}'")
    if model is not None:
        filters = experience_state_filters(logical_date, model, settings)
        checks.update({name: filters[name] for name in ("history_daily", "history_current")})
        if mode == "affected":
            start = dt.date(1970, 1, 1) + dt.timedelta(days=window)
            checks["history_surveys"] = ("touchpoints", f"event_date >= DATE '{start.isoformat()}' AND survey_kind IS NOT NULL")
    names = tuple(name for name, (table, where) in checks.items() if _has_rows(warehouse, table, where))
    if mode == "affected" and "history" in names:  # the same read, set apart by the run's event ids
        names += (UNREPLAYED,)
    history = None if since is None else (since - dt.date(1970, 1, 1)).days
    # identity's lookback reaching further back than the experience window: the older stored
    # touchpoints are read after stitching, and only those that can move
    moved_before = window if mode == "affected" and history is not None and window is not None and history < window else None
    return StateRequest(names=names, mode=mode, history_since=history, window=window, earliest=earliest,
                        moved_before=moved_before)


def launch_sources(warehouse, staging_dir: str, logical_date: dt.date, model: ScoringModel | None,
                   settings: ExperienceSettings | None) -> dict[str, beam.PTransform]:
    """Snapshots of the small stored tables read whole at launch (:data:`AT_LAUNCH`); tables
    without matching rows are left out."""
    sources = {}
    if _has_rows(warehouse, "erasure_requests", None):
        sources["erasure_requests"] = warehouse.read("erasure_requests", staging_dir)
    if model is not None:
        table, where = experience_state_filters(logical_date, model, settings or ExperienceSettings())["history_survey_days"]
        if _has_rows(warehouse, table, where):
            sources["history_survey_days"] = warehouse.read(table, staging_dir, where=where)
    return sources


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


def _clear(path: str) -> None:
    if FileSystems.exists(path):
        if "://" in path:
            FileSystems.delete([path])
        else:
            shutil.rmtree(path, ignore_errors=True)


def commits_in_pipeline(options: PipelineOptions) -> bool:
    """Whether the commit is the pipeline's last step instead of the driver's job after it.

    A Dataflow (Flex) Template's launcher only *creates* the job (``--template_location``) and exits:
    nothing after ``run()`` happens there, so the commit must be a step of the job itself."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    mode = options.view_as(BatchOptions).commit
    template = options.view_as(GoogleCloudOptions).template_location
    if template and mode == "driver":
        raise ConfigError(
            "--commit=driver cannot work when a template is created (--template_location): the launcher exits "
            "before the job runs, so a driver commit would apply empty staging",
            "omit --commit (auto) or pass --commit=pipeline")
    if mode == "auto":
        return bool(template)
    return mode == "pipeline"


class CommitRun(beam.DoFn):
    """The commit as a pipeline step: runs once, after every table's staging files are final (its
    input is the global count of staged files), and applies them plus the ``pipeline_runs`` row in
    one warehouse transaction, exactly as the driver would. Staging files are kept (a retried bundle
    re-applies the same rows by key; a commit of emptied staging would wipe ``replace`` tables); the
    next run of the same run id clears them, and a bucket lifecycle rule removes old ones."""

    def __init__(self, warehouse_url: str, staging_dir: str, tables: tuple[str, ...], run_row: dict):
        self._url = warehouse_url
        self._staging_dir = staging_dir
        self._tables = tables
        self._run_row = run_row

    def process(self, staged_files: int):
        from touchline.transforms.warehouse import open_warehouse

        row = {**self._run_row, "finished_at": int(time.time() * 1e6),
               "metrics": [*self._run_row["metrics"], {"name": "staged_files", "value": int(staged_files)}]}
        warehouse = open_warehouse(self._url)
        try:
            written = warehouse.commit(self._staging_dir, self._tables, rows={"pipeline_runs": [row]})
        finally:
            warehouse.close()
        log.info("committed run %s to %s: %s", row["run_id"], self._url, written)
        yield written


def stage_tables(tables: dict[str, beam.PCollection], warehouse, staging_dir: str, commit: CommitRun | None = None) -> None:
    """The graph's end: ``Stage<Table>`` per table, then (with ``commit``) ``CommitRun`` once every
    staging file is final."""
    staged = [rows | f"Stage{camel(table)}" >> warehouse.stage(table, staging_dir) for table, rows in tables.items()]
    if commit is not None:
        _ = (staged | "FlattenStaged" >> beam.Flatten()
             | "CountStaged" >> beam.combiners.Count.Globally()
             | "CommitRun" >> beam.ParDo(commit))


def release_freed_memory() -> None:
    """Collect garbage and hand the freed heap back to the operating system (glibc's
    ``malloc_trim``). After a local run the driver's RSS still counts the runner's shuffle buffers --
    freed, but kept by the allocator -- and the warehouse commit that follows in the same process
    needs that memory (at 10^7 events: ~1 GB). A no-op where there is no glibc."""
    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_plan(plan: BatchPlan, options: PipelineOptions) -> RunResult:
    in_pipeline = commits_in_pipeline(options)
    ctx = RunContext(run_id=plan.run_id, logical_date=plan.logical_date, hash_key_source=plan.hash_key_source,
                     buckets=plan.buckets, spill_dir=FileSystems.join(plan.staging_dir, "_shuffle") if plan.spill else None)
    warehouse = plan.warehouse
    warehouse.init()
    _clear(plan.staging_dir)
    started = time.time()
    launch = launch_sources(warehouse, plan.staging_dir, plan.logical_date, plan.model, plan.experience)
    request = state_request(warehouse, plan.logical_date, plan.identity, plan.model, plan.experience, plan.state)
    stored = ReadStoredState(warehouse.url, request, plan.staging_dir) if request.names else None
    p = batch_pipeline(options)
    table_reads = {channel: ReadBigQueryTable(source, plan.bigquery, plan.read_streams, plan.bigquery.project)
                   for channel, source in plan.tables.items()}
    tables = build_pipeline(p, plan.inputs, ctx, plan.split_bytes, plan.identity, launch, table_reads,
                            plan.model, plan.experience, stored=stored)
    run_row = {
        "run_id": plan.run_id,
        "pipeline": "batch",
        "logical_date": ctx.logical_day,
        "started_at": int(started * 1e6),
        "finished_at": int(started * 1e6),
        "status": "succeeded",
        "runner": options.view_as(StandardOptions).runner,
        "touchline_version": __version__,
        "model_version": plan.model.model_version if plan.model else None,
        "inputs": plan.input_labels(),
        "metrics": [],
    }
    commit = CommitRun(warehouse.url, plan.staging_dir, tuple(tables), run_row) if in_pipeline else None
    stage_tables(tables, warehouse, plan.staging_dir, commit)
    launched = time.time()
    warehouse.close()  # the stored-state step opens the warehouse itself (DuckDB: one writer per file)
    result = p.run()
    state = result.wait_until_finish()  # returns at once when only a template was created
    if state != PipelineState.DONE:
        raise RuntimeError(f"pipeline ended in state {state}; nothing was committed (staging kept at {plan.staging_dir})")
    if in_pipeline:
        job = getattr(result, "job_id", lambda: None)() if getattr(result, "has_job", True) else None
        return RunResult(plan.run_id, warehouse.url, {}, {}, time.time() - started, plan.staging_dir,
                         extra={"commit": "in pipeline (step CommitRun)", "job_id": job})
    counts = counters(result)
    finished = time.time()
    release_freed_memory()  # the local runner's shuffle buffers are garbage now; the commit needs the room
    run_row.update(finished_at=int(finished * 1e6), metrics=[{"name": k, "value": v} for k, v in counts.items()])
    written = warehouse.commit(plan.staging_dir, tables, rows={"pipeline_runs": [run_row]})
    committed = time.time()
    _clear(plan.staging_dir)
    return RunResult(plan.run_id, warehouse.url, counts, written, finished - started, plan.staging_dir,
                     extra={"summary_sections": summary_sections(warehouse.url),
                            # where the time went (the benchmark reports them): state snapshots and
                            # graph construction, the pipeline itself, the warehouse commit
                            "prepare_s": launched - started, "pipeline_s": finished - launched,
                            "commit_s": committed - finished})


def run(argv: list[str], prog: str = "touchline batch") -> RunResult:
    options = parse_pipeline_args(argv, prog)
    plan = resolve_batch(options)
    try:
        return run_plan(plan, options)
    finally:
        plan.warehouse.close()


__all__ = ["build_pipeline", "CommitRun", "commits_in_pipeline", "stage_tables", "state_request", "launch_sources", "run", "run_plan",
           "RunResult", "ConfigError", "TABLES", "camel", "counters"]
