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
import re
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser

from touchline.transforms import channels, sources
from touchline.transforms.identifiers import DEFAULT_KEY_SOURCE, KeyError_, key_fingerprint, resolve_key
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


class BatchOptions(PipelineOptions):
    """Inputs of the batch pipeline."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--input", default=None,
                            help="Root folder or gs:// prefix with one sub-folder per channel (ROOT/app/*.avro, ROOT/web/*.jsonl, ...).")
        for name in channels.names():
            parser.add_argument(f"--{name}_input", default=None, action="append",
                                help=f"File pattern(s) of the {name} channel (Avro or JSONL); repeatable. Overrides --input for {name}.")
        parser.add_argument("--channels", default=None,
                            help=f"Comma-separated channels to read (default: all of {', '.join(channels.names())}).")
        parser.add_argument("--split_mb", type=int, default=64,
                            help="Read files in ranges of this many MiB so large files are read in parallel (default 64).")


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
    files: dict[str, list[tuple[str, int, float]]] = field(default_factory=dict)


def _logical_date(value: str | None) -> dt.date:
    if value is None:
        return dt.datetime.now(dt.timezone.utc).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--logical_date={value!r} is not a date", "use YYYY-MM-DD, e.g. --logical_date=2026-10-31") from None


def resolve_inputs(opts: BatchOptions) -> dict[str, list[str]]:
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
    for name in selected:
        explicit = getattr(opts, f"{name}_input", None)
        if explicit:
            inputs[name] = list(explicit)
        elif opts.input:
            inputs[name] = [sources.expand_input(opts.input, name)]
    if not inputs:
        raise ConfigError(
            "no input given",
            "pass --input DIR (one sub-folder per channel, as `touchline generate` writes) or --app_input/--web_input/... patterns",
        )
    return inputs


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


def resolve_batch(options: PipelineOptions) -> BatchPlan:
    """Validate everything a batch run needs, or raise ConfigError/WarehouseError with a fix."""
    tl = options.view_as(TouchlineOptions)
    batch = options.view_as(BatchOptions)
    if batch.split_mb <= 0:
        raise ConfigError(f"--split_mb must be positive, got {batch.split_mb}", "use e.g. --split_mb=64")
    inputs = resolve_inputs(batch)
    try:
        key = resolve_key(tl.hash_key_source)
    except KeyError_ as exc:
        raise ConfigError(str(exc)) from None
    try:
        warehouse = open_warehouse(tl.warehouse)
        warehouse.check()
    except WarehouseError as exc:
        raise ConfigError(str(exc)) from None
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
    )
    plan.files = _matched_files(inputs)
    plan.run_id = run_fingerprint("batch", plan)
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
    )


def add_help_for(parser: argparse.ArgumentParser, *option_classes) -> None:
    """Show the Touchline flags in ``--help`` of a sub-command."""
    group = parser.add_argument_group("pipeline options (plus any Beam/Dataflow option, e.g. --runner)")
    for cls in option_classes:
        cls._add_argparse_args(group)
