"""Pipeline options and their validation ("preflight"), done before any graph is built.

Touchline's flags are Beam ``PipelineOptions`` (so they travel to Dataflow and templates like any
other option), parsed strictly: an unknown flag or a bad value is an error with a suggestion, never
silently discarded as Beam does by default.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser

from touchline.transforms import channels, sources
from touchline.transforms.bigquery_connect import BigQueryConnection, parse_table
from touchline.transforms.bigquery_source import TableInput, inspect_table
from touchline.transforms.experience import ExperienceSettings
from touchline.transforms.identifiers import DEFAULT_KEY_SOURCE, KINDS, KeyError_, key_fingerprint, resolve_key
from touchline.transforms.identity import DEFAULT_DEGREE_CAPS, DEFAULT_LOOKBACK_DAYS, IdentityConfig, parse_blocklist
from touchline.transforms.identity.components import DEFAULT_MAX_ROUNDS
from touchline.transforms.scoring.model import ModelError, ScoringModel, load_model
from touchline.transforms.warehouse import Warehouse, WarehouseError, open_warehouse

from . import __version__

DEFAULT_WAREHOUSE = "touchline.duckdb"


class ConfigError(Exception):
    """A configuration problem: what is wrong and how to fix it."""

    def __init__(self, problem: str, fix: str = ""):
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}" if self.fix else self.problem


class TouchlineOptions(PipelineOptions):
    """Options shared by every Touchline pipeline."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--warehouse", default=DEFAULT_WAREHOUSE,
                            help="Where tables go: a DuckDB file path (default touchline.duckdb) or bigquery://PROJECT.DATASET.")
        parser.add_argument("--hash_key_source", default=DEFAULT_KEY_SOURCE,
                            help="Key for pseudonymizing identifiers: env:NAME, file:PATH, secret:projects/.../versions/N, "
                                 "or demo (public key, sample data only). Default env:TOUCHLINE_HASH_KEY.")
        parser.add_argument("--logical_date", default=None,
                            help="Logical date of the run, YYYY-MM-DD (default: today, UTC). Scheduled runs pass their date.")
        parser.add_argument("--staging_dir", default=None,
                            help="Folder (or gs:// prefix) for staging files; default: next to the DuckDB file, "
                                 "or --temp_location for BigQuery.")
        parser.add_argument("--bigquery_endpoint", default=None,
                            help="BigQuery REST endpoint override, e.g. http://127.0.0.1:9050 for the bqemulator "
                                 "(anonymous credentials; default: env TOUCHLINE_BIGQUERY_ENDPOINT, else Google's).")
        parser.add_argument("--bigquery_storage_endpoint", default=None,
                            help="BigQuery Storage Read (gRPC) endpoint override, e.g. 127.0.0.1:9060 "
                                 "(default: env TOUCHLINE_BIGQUERY_STORAGE_ENDPOINT).")
        parser.add_argument("--bigquery_location", default=None,
                            help="BigQuery location of the dataset and jobs, e.g. EU (default: env TOUCHLINE_BIGQUERY_LOCATION, "
                                 "else the dataset's).")


class BatchOptions(PipelineOptions):
    """Inputs of the batch pipeline."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--input", default=None,
                            help="Root folder or gs:// prefix with one sub-folder per channel (ROOT/app/*.avro, ROOT/web/*.jsonl, ...); "
                                 "source adapters' folders (ROOT/segment/, ROOT/ga4/, ...) are read when present.")
        for name in channels.names():
            what = f"the {name} channel" if channels.get(name).kind == "channel" else f"the {name} source adapter"
            parser.add_argument(f"--{name}_input", default=None, action="append",
                                help=f"File pattern(s) of {what} (Avro or JSONL); repeatable. Overrides --input for {name}.")
        for name in channels.names():
            if not channels.get(name).reads_tables:
                continue
            parser.add_argument(f"--{name}_table", default=None,
                                help=f"Read the {name} channel from this BigQuery table (PROJECT.DATASET.TABLE; columns of "
                                     f"its raw schema) between --from_date and --to_date.")
        parser.add_argument("--from_date", default=None,
                            help="First day (YYYY-MM-DD, inclusive) read from --<channel>_table inputs (default: --logical_date).")
        parser.add_argument("--to_date", default=None,
                            help="Last day (YYYY-MM-DD, inclusive) read from --<channel>_table inputs (default: --from_date).")
        parser.add_argument("--table_date_column", default=None,
                            help="DATE/TIMESTAMP/DATETIME column the date range filters on (default: the table's partitioning column).")
        parser.add_argument("--bigquery_read_streams", type=int, default=16,
                            help="Storage Read streams per --<channel>_table input (upper bound; default 16).")
        parser.add_argument("--channels", default=None,
                            help=f"Comma-separated channels to read (default: all of {', '.join(channels.names())}).")
        parser.add_argument("--commit", default="auto", choices=("auto", "driver", "pipeline"),
                            help="Who commits the staged tables: the launching process after the pipeline succeeded "
                                 "(driver), or the pipeline's last step CommitRun (pipeline: Dataflow templates, whose "
                                 "launcher exits once the job exists). auto (default) = pipeline with --template_location.")
        parser.add_argument("--split_mb", type=int, default=64,
                            help="Read files in ranges of this many MiB so large files are read in parallel (default 64).")
        parser.add_argument("--state", default="affected", choices=("affected", "full"),
                            help="Which stored rows a run reads: affected (default: the identity graph of the persons "
                                 "this run's identifiers touch, their touchpoints and scores; docs/warehouse.md) or full "
                                 "(every row in the windows, as a from-scratch recompute: after changing --identity_degree_caps "
                                 "or --blocklist_file, so the whole stored graph is judged again).")
        parser.add_argument("--shuffle_spill", default="auto", choices=("auto", "on", "off"),
                            help="Carry the large batches of every shuffle as files under the staging folder, with only "
                                 "their paths going through the runner (auto, the default: on for the local DirectRunner, "
                                 "which keeps every shuffle in its own memory; off elsewhere, e.g. Dataflow's shuffle service).")
        parser.add_argument("--buckets", type=int, default=0,
                            help="Hash buckets of every batch shuffle: each step's work is cut into this many batches, "
                                 "spread over the workers (default 0 = from the workers and the input size: at least 4 per "
                                 "worker, about sqrt(input records / 2000), and at most ~80,000 rows per bucket: what a worker "
                                 "holds at a time).")


class IdentityOptions(PipelineOptions):
    """Identity stitching (docs/identity.md)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--identity_lookback_days", type=int, default=DEFAULT_LOOKBACK_DAYS,
                            help=f"Re-attribute stored touchpoints of the last N days when their person changes (a late "
                                 f"login, a merge); older ones keep their person id (default {DEFAULT_LOOKBACK_DAYS}; 0 = none).")
        parser.add_argument("--identity_max_rounds", type=int, default=DEFAULT_MAX_ROUNDS,
                            help=f"Connected-components rounds unrolled in the graph before the exact in-memory finish of "
                                 f"what is left (default {DEFAULT_MAX_ROUNDS}: each round shrinks long chains about twofold).")
        parser.add_argument("--identity_degree_caps", default=None, metavar="KIND=N,...",
                            help="Override per-kind degree caps, e.g. device_id=20,email=50 (defaults: "
                                 + ", ".join(f"{k}={v}" for k, v in DEFAULT_DEGREE_CAPS.items()) + ").")
        parser.add_argument("--blocklist_file", default=None,
                            help="Extra junk identifier values, one per line (kind:value for one kind, # comments), "
                                 "on top of the built-in list (null, undefined, test@test.com, all-zero ids, ...).")


class ExperienceOptions(PipelineOptions):
    """Journeys and experience scores (the stage after identity stitching)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--scoring_model", default=None,
                            help="Scoring model file (YAML or TOML with a model_version); default: the model shipped "
                                 "with Touchline. `touchline calibrate` writes calibrated ones.")
        parser.add_argument("--journey_gap_hours", type=float, default=12.0,
                            help="A journey ends after this many hours without a touchpoint (default 12).")
        parser.add_argument("--score_lookback_days", type=int, default=7,
                            help="Late events up to this many days before --logical_date update the scores of the "
                                 "days they belong to (default 7; at least 1).")


def resolve_experience(options: PipelineOptions) -> tuple[ScoringModel, ExperienceSettings]:
    """The scoring model and stage settings, validated (ConfigError names the file or flag and the fix)."""
    opts = options.view_as(ExperienceOptions)
    try:
        model = load_model(opts.scoring_model)
    except ModelError as exc:
        raise ConfigError(str(exc), exc.fix or "fix the file, or omit --scoring_model to use the default model") from None
    if not opts.journey_gap_hours > 0 or opts.journey_gap_hours > 24 * 30:
        raise ConfigError(f"--journey_gap_hours must be between 0 and 720 hours, got {opts.journey_gap_hours}",
                          "use e.g. --journey_gap_hours=12")
    if opts.score_lookback_days < 1 or opts.score_lookback_days > 366:
        raise ConfigError(
            f"--score_lookback_days must be between 1 and 366, got {opts.score_lookback_days}",
            "use e.g. --score_lookback_days=7 (a journey crossing midnight is recomputed from the day before, "
            "so at least 1)")
    return model, ExperienceSettings(journey_gap_hours=opts.journey_gap_hours, lookback_days=opts.score_lookback_days)


class StreamOptions(PipelineOptions):
    """Inputs and knobs of the streaming pipeline (see docs/streaming.md)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--subscription", default=None,
                            help="Pub/Sub subscription carrying every channel (attribute channel=...): "
                                 "projects/PROJECT/subscriptions/NAME, or NAME with --project.")
        parser.add_argument("--timestamp_attribute", default="event_time",
                            help="Message attribute with the event time (ms since epoch or RFC 3339); default event_time.")
        parser.add_argument("--allowed_lateness", default="1d",
                            help="How far behind the watermark a message may arrive and still count, e.g. 30m, 6h, 1d "
                                 "(default 1d). Older messages become dead letters with reason too_late.")
        parser.add_argument("--dedup_horizon", default="1d",
                            help="How long (event time) copies of an event_id are recognised, e.g. 1d (default); "
                                 "at least --allowed_lateness.")
        parser.add_argument("--write_batch_size", type=int, default=500,
                            help="Rows per warehouse transaction (default 500).")
        parser.add_argument("--write_max_latency", default="2s",
                            help="Longest a row waits for its batch before it is written, e.g. 500ms, 2s (default 2s).")
        parser.add_argument("--lateness_shards", type=int, default=16,
                            help="Keys the lateness check is spread over (default 16).")
        parser.add_argument("--replay_on_restart", default="auto", choices=("auto", "on", "off"),
                            help="Seek the subscription back to its replay point (a Pub/Sub snapshot) on start, so a "
                                 "stopped local run loses nothing; auto = on for the local runner (default).")
        parser.add_argument("--reset_replay_point", action="store_true", default=False,
                            help="Start from the subscription's current backlog and take a new replay point.")
        parser.add_argument("--stop_after", default=None,
                            help="Local runner: stop after this long (e.g. 10m); default: run until Ctrl-C.")
        parser.add_argument("--identity_refresh", default="10m",
                            help="How often a remote streaming job re-reads identity_map (the slowly refreshed side "
                                 "input), e.g. 5m, 1h (default 10m). The local runner reads it once at start.")


def _all_option_classes():
    seen = {}
    for cls in PipelineOptions.__subclasses__():
        seen.setdefault(f"{cls.__module__}.{cls.__qualname__}", cls)
    return list(seen.values())


def parse_pipeline_args(argv: list[str], prog: str) -> PipelineOptions:
    """Parse Touchline + Beam flags strictly (unknown flags are errors, with suggestions)."""
    parser = _BeamArgumentParser(prog=prog, allow_abbrev=False)
    for cls in _all_option_classes():
        cls._add_argparse_args(parser)
    _known, unknown = parser.parse_known_args(argv)
    if unknown:
        flags = [u.split("=", 1)[0] for u in unknown if u.startswith("--")] or unknown
        hints = difflib.get_close_matches(flags[0], list(parser._option_string_actions), n=1)
        raise ConfigError(
            f"unknown flag {flags[0]}" + (f" (did you mean {hints[0]}?)" if hints else ""),
            f"run `{prog} --help` for the flags it takes",
        )
    return PipelineOptions(argv)


@dataclass
class BatchPlan:
    """Validated inputs of one batch run."""

    inputs: dict[str, list[str]]
    warehouse: Warehouse
    logical_date: dt.date
    hash_key_source: str
    key_fingerprint: str
    staging_dir: str
    split_bytes: int
    run_id: str = ""
    #: hash buckets of the batch shuffles (see touchline.transforms.batches)
    buckets: int = 8
    #: spill shuffled batches to files under the staging folder (see touchline.transforms.packing)
    spill: bool = False
    #: which stored rows the run reads: affected or full (see touchline.transforms.warehouse.state)
    state: str = "affected"
    files: dict[str, list[tuple[str, int, float]]] = field(default_factory=dict)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    #: scoring model and journey/score settings (None only in plans built by hand for tests)
    model: ScoringModel | None = None
    experience: ExperienceSettings | None = None
    #: channels read from BigQuery tables (see touchline.transforms.bigquery_source)
    tables: dict[str, TableInput] = field(default_factory=dict)
    bigquery: BigQueryConnection | None = None
    read_streams: int = 16

    def input_labels(self) -> list[str]:
        """``channel=pattern`` / ``channel=bq:TABLE[from..to]`` for the pipeline_runs row."""
        labels = [f"{channel}={pattern}" for channel, patterns in self.inputs.items() for pattern in patterns]
        return labels + [f"{channel}={source.describe()}" for channel, source in self.tables.items()]


def _logical_date(value: str | None) -> dt.date:
    return date_flag("--logical_date", value, dt.datetime.now(dt.timezone.utc).date())


def resolve_inputs(opts: BatchOptions, tables: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """File patterns per channel (channels in ``tables`` read files only when given patterns)."""
    known = channels.names()
    selected = known
    if opts.channels:
        selected = [c.strip() for c in opts.channels.split(",") if c.strip()]
        for name in selected:
            if name not in known:
                hint = difflib.get_close_matches(name, known, n=1)
                raise ConfigError(
                    f"unknown channel {name!r} in --channels" + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                    f"use a comma-separated subset of: {', '.join(known)}",
                )
    inputs: dict[str, list[str]] = {}
    under_root = [name for name in selected if not getattr(opts, f"{name}_input", None) and name not in tables]
    for name in selected:
        explicit = getattr(opts, f"{name}_input", None)
        if explicit:
            inputs[name] = list(explicit)
    if opts.input:
        found = sources.inputs_under_root(opts.input, under_root, named_explicitly=bool(opts.channels))
        inputs.update({name: [pattern] for name, pattern in found.items()})
        inputs = {name: inputs[name] for name in selected if name in inputs}  # in the order of --channels
    if not inputs and not tables:
        raise ConfigError(
            "no input given",
            "pass --input DIR (one sub-folder per channel, as `touchline generate` writes) or --app_input/--web_input/... patterns",
        )
    return inputs


def date_flag(flag: str, value: str | None, default: dt.date | None = None) -> dt.date | None:
    """A YYYY-MM-DD flag's date (``default`` when not given), or one ConfigError naming the fix."""
    if value is None:
        return default
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{flag}={value!r} is not a date", f"use YYYY-MM-DD, e.g. {flag}=2026-10-31") from None


def resolve_connection(options: PipelineOptions, project: str) -> BigQueryConnection:
    """Where BigQuery is (flags, then TOUCHLINE_BIGQUERY_* variables)."""
    tl = options.view_as(TouchlineOptions)
    return BigQueryConnection.resolve(project, tl.bigquery_location, tl.bigquery_endpoint, tl.bigquery_storage_endpoint)


def warehouse_url(options: PipelineOptions) -> str:
    """--warehouse, with the --bigquery_* endpoint flags folded into a bigquery:// URL."""
    tl = options.view_as(TouchlineOptions)
    return with_bigquery_flags(tl.warehouse, tl.bigquery_endpoint, tl.bigquery_storage_endpoint, tl.bigquery_location)


def with_bigquery_flags(url: str, endpoint: str | None, storage_endpoint: str | None, location: str | None) -> str:
    if not url.startswith("bigquery://"):
        return url
    extra = [f"{k}={v}" for k, v in (("endpoint", endpoint), ("storage_endpoint", storage_endpoint), ("location", location))
             if v and f"{k}=" not in url]
    return url + (("&" if "?" in url else "?") + "&".join(extra) if extra else "")


def resolve_tables(options: PipelineOptions, selected: list[str], logical_date: dt.date) -> tuple[dict[str, TableInput], BigQueryConnection | None]:
    """Validate ``--<channel>_table`` inputs at launch (table exists, columns match, date column)."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    batch = options.view_as(BatchOptions)
    wanted = {name: getattr(batch, f"{name}_table", None) for name in selected}
    wanted = {name: table for name, table in wanted.items() if table}
    if not wanted:
        return {}, None
    if batch.bigquery_read_streams <= 0:
        raise ConfigError(f"--bigquery_read_streams must be positive, got {batch.bigquery_read_streams}", "use e.g. --bigquery_read_streams=16")
    from_date = date_flag("--from_date", batch.from_date, logical_date)
    to_date = date_flag("--to_date", batch.to_date, from_date)
    if to_date < from_date:
        raise ConfigError(f"--to_date {to_date} is before --from_date {from_date}", "swap them, or pass a single --from_date")
    try:
        first_project = parse_table(next(iter(wanted.values())))[0]
        conn = resolve_connection(options, options.view_as(GoogleCloudOptions).project or first_project)
        tables = {name: inspect_table(conn, name, table, batch.table_date_column, from_date, to_date)
                  for name, table in wanted.items()}
    except WarehouseError as exc:
        raise ConfigError(str(exc)) from None
    return tables, conn


def _matched_files(inputs: dict[str, list[str]]) -> dict[str, list[tuple[str, int, float]]]:
    files: dict[str, list[tuple[str, int, float]]] = {}
    for channel, patterns in inputs.items():
        found = []
        for pattern in patterns:
            try:
                metadata = FileSystems.match([pattern])[0].metadata_list
            except Exception as exc:  # noqa: BLE001 -- e.g. gs:// without credentials
                raise ConfigError(f"cannot list {pattern}: {exc}", "check the path and your credentials") from None
            found += [(m.path, m.size_in_bytes, m.last_updated_in_seconds) for m in metadata if sources.file_format(m.path)]
        if not found:
            raise ConfigError(
                f"no {channel} input files match {', '.join(patterns)}",
                "check the path (files must end in .avro, .jsonl, .ndjson or .json[.gz]); "
                "`touchline generate --out DIR` writes sample data in this layout",
            )
        files[channel] = sorted(set(found))
    return files


def _degree_caps(text: str | None) -> tuple[tuple[str, int], ...]:
    if not text:
        return ()
    caps = []
    for part in text.split(","):
        kind, sep, value = part.strip().partition("=")
        if not sep or kind not in KINDS or not value.strip().isdigit() or int(value) < 1:
            hint = difflib.get_close_matches(kind, list(KINDS), n=1)
            raise ConfigError(
                f"--identity_degree_caps: {part.strip()!r} is not KIND=N with N >= 1"
                + (f" (did you mean {hint[0]}?)" if hint and kind not in KINDS else ""),
                f"use e.g. --identity_degree_caps device_id=20,email=50; kinds: {', '.join(KINDS)}",
            )
        caps.append((kind, int(value)))
    return tuple(caps)


def _blocklist(path: str | None) -> tuple[tuple[str, str], ...]:
    if not path:
        return ()
    try:
        with FileSystems.open(path) as fh:
            text = fh.read().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"--blocklist_file {path} is not UTF-8 text", "save it as UTF-8, one value per line") from None
    except Exception as exc:  # noqa: BLE001 -- missing file, no permission, bad gs:// path
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise ConfigError(f"cannot read --blocklist_file {path}: {reason}",
                          "check the path (one junk value per line, kind:value for one kind)") from None
    return parse_blocklist(text.splitlines())


def resolve_identity(options: PipelineOptions) -> IdentityConfig:
    """Validate the --identity_* flags and read the blocklist file, or raise ConfigError with a fix."""
    opts = options.view_as(IdentityOptions)
    if opts.identity_lookback_days < 0:
        raise ConfigError(f"--identity_lookback_days must be 0 or more, got {opts.identity_lookback_days}",
                          "use e.g. --identity_lookback_days=30 (0 disables re-attribution of stored touchpoints)")
    if not 0 <= opts.identity_max_rounds <= 64:
        raise ConfigError(f"--identity_max_rounds must be between 0 and 64, got {opts.identity_max_rounds}",
                          f"use e.g. --identity_max_rounds={DEFAULT_MAX_ROUNDS}")
    return IdentityConfig(
        lookback_days=opts.identity_lookback_days,
        max_rounds=opts.identity_max_rounds,
        degree_caps=_degree_caps(opts.identity_degree_caps),
        blocklist=_blocklist(opts.blocklist_file),
    )


def run_fingerprint(pipeline: str, plan: BatchPlan, extra: dict | None = None) -> str:
    """Run id: same inputs (path, size, mtime), date, key and code => same id (idempotent re-runs)."""
    payload = {
        "pipeline": pipeline,
        "version": __version__,
        "date": plan.logical_date.isoformat(),
        "key": plan.key_fingerprint,
        "files": plan.files,
        "extra": extra or {},
    }
    if plan.tables:
        payload["tables"] = {channel: [source.describe(), *source.version] for channel, source in plan.tables.items()}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"{plan.logical_date:%Y%m%d}-{digest[:12]}"


def default_staging_dir(warehouse: Warehouse, options: PipelineOptions, run_key: str) -> str:
    explicit = options.view_as(TouchlineOptions).staging_dir
    if explicit:
        return FileSystems.join(explicit, run_key)
    path = getattr(warehouse, "path", None)
    if path:
        import os

        return os.path.join(os.path.dirname(path), ".touchline-staging", run_key)
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    temp = options.view_as(GoogleCloudOptions).temp_location
    if not temp:
        raise ConfigError("no place for staging files", "pass --staging_dir gs://BUCKET/touchline-staging or --temp_location")
    return FileSystems.join(temp, "touchline-staging", run_key)


#: input bytes per record of the generator's files (Avro and JSON Lines): the size estimate of a run
BYTES_PER_RECORD = 140
#: rows per batch a shuffle should move at least (smaller ones cost more to pack than to process)
ROWS_PER_PIECE = 2000
#: rows one bucket should hold at most: a worker holds a bucket's rows at a time (the scoring of
#: 140,000 touchpoints took ~1.5 GB per worker at 10^7 records with 71 buckets)
ROWS_PER_BUCKET = 80_000


def default_buckets(options: PipelineOptions, input_bytes: int) -> int:
    """Buckets of the batch shuffles: at least 4 per worker (so every worker has work and no worker
    much more than another), about sqrt(records / ROWS_PER_PIECE) so the batches a shuffle
    moves -- producers x buckets of them -- hold thousands of rows each, and enough that no bucket
    holds more than ROWS_PER_BUCKET rows (what a worker holds at a time)."""
    from apache_beam.options.pipeline_options import DirectOptions, WorkerOptions

    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    if runner in ("DirectRunner", "direct", "SwitchingDirectRunner"):
        direct = options.view_as(DirectOptions)
        workers = direct.direct_num_workers if direct.direct_running_mode != "in_memory" else 1
        workers = workers or os.cpu_count() or 1
    else:
        worker = options.view_as(WorkerOptions)
        workers = (worker.max_num_workers or worker.num_workers or 4) * 4  # several SDK threads per worker
    records = input_bytes / BYTES_PER_RECORD
    return max(4 * workers, math.ceil(math.sqrt(records / ROWS_PER_PIECE)), math.ceil(records / ROWS_PER_BUCKET))


def resolve_batch(options: PipelineOptions) -> BatchPlan:
    """Validate everything a batch run needs, or raise ConfigError/WarehouseError with a fix."""
    tl = options.view_as(TouchlineOptions)
    batch = options.view_as(BatchOptions)
    if batch.split_mb <= 0:
        raise ConfigError(f"--split_mb must be positive, got {batch.split_mb}", "use e.g. --split_mb=64")
    selected = [c.strip() for c in batch.channels.split(",") if c.strip()] if batch.channels else channels.names()
    table_channels = tuple(name for name in selected if getattr(batch, f"{name}_table", None))
    inputs = resolve_inputs(batch, table_channels)
    identity = resolve_identity(options)
    model, experience = resolve_experience(options)
    try:
        key = resolve_key(tl.hash_key_source)
    except KeyError_ as exc:
        raise ConfigError(str(exc)) from None
    try:
        warehouse = open_warehouse(warehouse_url(options))
        warehouse.check()
    except WarehouseError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return _plan(options, batch, inputs, table_channels, identity, model, experience, key, warehouse)
    except BaseException:
        warehouse.close()  # a bad flag after the warehouse opened must not leave its file locked
        raise


def _plan(options, batch, inputs, table_channels, identity, model, experience, key, warehouse) -> BatchPlan:
    tl = options.view_as(TouchlineOptions)
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    if not warehouse.remote_ok and runner not in ("DirectRunner", "direct", "BundleBasedDirectRunner", "SwitchingDirectRunner"):
        raise ConfigError(
            f"the DuckDB warehouse is a local file and cannot be written from {runner}",
            "use --warehouse bigquery://PROJECT.DATASET on remote runners",
        )
    plan = BatchPlan(
        inputs=inputs,
        warehouse=warehouse,
        logical_date=_logical_date(tl.logical_date),
        hash_key_source=tl.hash_key_source,
        key_fingerprint=key_fingerprint(key),
        staging_dir="",
        split_bytes=batch.split_mb << 20,
        identity=identity,
        model=model,
        experience=experience,
    )
    plan.files = _matched_files(inputs)
    if batch.buckets < 0:
        raise ConfigError(f"--buckets must be positive (or 0 for automatic), got {batch.buckets}", "use e.g. --buckets=64")
    plan.buckets = batch.buckets or default_buckets(options, sum(size for files in plan.files.values() for _, size, _ in files))
    plan.state = batch.state
    plan.spill = batch.shuffle_spill == "on" or (batch.shuffle_spill == "auto" and runner in ("DirectRunner", "direct"))
    plan.tables, plan.bigquery = resolve_tables(options, list(table_channels), plan.logical_date)
    plan.read_streams = batch.bigquery_read_streams
    plan.run_id = run_fingerprint("batch", plan, {
        "identity": identity,
        "model": model.fingerprint,
        "journey_gap_hours": experience.journey_gap_hours,
        "score_lookback_days": experience.lookback_days,
    })
    plan.staging_dir = default_staging_dir(warehouse, options, plan.run_id)
    return plan


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value, flag: str) -> float:
    """``500ms``, ``90s``/``90``, ``30m``, ``6h``, ``7d`` -> seconds."""
    match = _DURATION.match(str(value))
    if not match:
        raise ConfigError(f"{flag}={value!r} is not a duration", f"use a number with a unit, e.g. {flag}=30m (ms, s, m, h, d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class StreamPlan:
    """Validated settings of one streaming run (no clients inside: safe to pickle into the graph)."""

    subscription: str
    warehouse_url: str
    hash_key_source: str = DEFAULT_KEY_SOURCE
    key_fingerprint: str = ""
    timestamp_attribute: str = "event_time"
    allowed_lateness: float = 86400.0
    dedup_horizon: float = 86400.0
    write_batch_size: int = 500
    write_max_latency: float = 2.0
    lateness_shards: int = 16
    local: bool = True
    replay: bool = True
    reset_replay_point: bool = False
    stop_after: float | None = None
    run_id: str = "stream"
    #: scoring model (None: the default model file) and journey gap, as in batch
    model: Any = None
    journey_gap_hours: float = 12.0
    #: seconds between identity_map re-reads on remote runners (0: once, at start; always 0 locally)
    identity_refresh: float = 0.0
    blocklist: tuple = ()


LOCAL_RUNNERS = ("DirectRunner", "direct", "BundleBasedDirectRunner", "SwitchingDirectRunner")


def resolve_stream(options: PipelineOptions, check_pubsub: bool = True) -> StreamPlan:
    """Validate everything a streaming run needs, or raise ConfigError with a fix."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    from touchline.transforms.warehouse import Warehouse as _Warehouse

    tl = options.view_as(TouchlineOptions)
    so = options.view_as(StreamOptions)
    if not so.subscription:
        raise ConfigError("no --subscription given",
                          "pass --subscription projects/PROJECT/subscriptions/NAME (`touchline publish --create` makes one on the emulator)")
    from . import pubsub_admin

    subscription = pubsub_admin.resource_path("subscriptions", so.subscription, options.view_as(GoogleCloudOptions).project,
                                              "--subscription")
    lateness = parse_duration(so.allowed_lateness, "--allowed_lateness")
    horizon = parse_duration(so.dedup_horizon, "--dedup_horizon")
    if horizon <= 0:
        raise ConfigError(f"--dedup_horizon must be positive, got {so.dedup_horizon}", "use e.g. --dedup_horizon=1d")
    if horizon < lateness:
        raise ConfigError(
            f"--dedup_horizon ({so.dedup_horizon}) is shorter than --allowed_lateness ({so.allowed_lateness})",
            "a copy arriving late but within the allowed lateness would be counted twice; "
            f"use --dedup_horizon={so.allowed_lateness} or more",
        )
    latency = parse_duration(so.write_max_latency, "--write_max_latency")
    if latency <= 0:
        raise ConfigError(f"--write_max_latency must be positive, got {so.write_max_latency}", "use e.g. --write_max_latency=2s")
    if so.write_batch_size < 1:
        raise ConfigError(f"--write_batch_size must be at least 1, got {so.write_batch_size}", "use e.g. --write_batch_size=500")
    if so.lateness_shards < 1:
        raise ConfigError(f"--lateness_shards must be at least 1, got {so.lateness_shards}", "use e.g. --lateness_shards=16")
    if not so.timestamp_attribute:
        raise ConfigError("--timestamp_attribute is empty", "use --timestamp_attribute=event_time (what `touchline publish` sets)")
    stop_after = parse_duration(so.stop_after, "--stop_after") if so.stop_after else None
    refresh = parse_duration(so.identity_refresh, "--identity_refresh")
    if refresh < 60:
        raise ConfigError(f"--identity_refresh must be at least 1m, got {so.identity_refresh}",
                          "use e.g. --identity_refresh=10m (each refresh reads the whole identity_map)")
    model, experience = resolve_experience(options)
    try:
        key = resolve_key(tl.hash_key_source)
    except KeyError_ as exc:
        raise ConfigError(str(exc)) from None
    try:
        warehouse = open_warehouse(tl.warehouse)
        warehouse.check()
    except WarehouseError as exc:
        raise ConfigError(str(exc)) from None
    try:
        if type(warehouse).write_rows is _Warehouse.write_rows:
            raise ConfigError(f"the warehouse {warehouse.url} has no streaming write path yet",
                              "stream into a DuckDB warehouse (--warehouse touchline.duckdb), or run `touchline batch`")
        runner = options.view_as(StandardOptions).runner or "DirectRunner"
        local = runner in LOCAL_RUNNERS
        if not warehouse.remote_ok and not local:
            raise ConfigError(
                f"the DuckDB warehouse is a local file and cannot be written from {runner}",
                "use --warehouse bigquery://PROJECT.DATASET on remote runners",
            )
        url = warehouse.url
    finally:
        warehouse.close()
    replay = {"on": True, "off": False}.get(so.replay_on_restart, local)
    if check_pubsub:
        client = pubsub_admin.subscriber()
        try:
            pubsub_admin.check_subscription(client, subscription)
        finally:
            client.close()
    fingerprint = key_fingerprint(key)
    run_id = "stream-" + hashlib.sha256(f"{subscription}\x00{url}\x00{fingerprint}".encode()).hexdigest()[:12]
    return StreamPlan(
        subscription=subscription,
        warehouse_url=url,
        hash_key_source=tl.hash_key_source,
        key_fingerprint=fingerprint,
        timestamp_attribute=so.timestamp_attribute,
        allowed_lateness=lateness,
        dedup_horizon=horizon,
        write_batch_size=so.write_batch_size,
        write_max_latency=latency,
        lateness_shards=so.lateness_shards,
        local=local,
        replay=replay,
        reset_replay_point=so.reset_replay_point,
        stop_after=stop_after,
        run_id=run_id,
        model=model,
        journey_gap_hours=experience.journey_gap_hours,
        identity_refresh=0.0 if local else refresh,
        blocklist=_blocklist(options.view_as(IdentityOptions).blocklist_file),
    )


def add_help_for(parser: argparse.ArgumentParser, *option_classes) -> None:
    """Show the Touchline flags in ``--help`` of a sub-command."""
    group = parser.add_argument_group("pipeline options (plus any Beam/Dataflow option, e.g. --runner)")
    for cls in option_classes:
        cls._add_argparse_args(group)
