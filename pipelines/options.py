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
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser

from touchline.transforms import channels, sources
from touchline.transforms.identifiers import DEFAULT_KEY_SOURCE, KINDS, KeyError_, key_fingerprint, resolve_key
from touchline.transforms.identity import DEFAULT_DEGREE_CAPS, DEFAULT_LOOKBACK_DAYS, IdentityConfig, parse_blocklist
from touchline.transforms.identity.components import DEFAULT_MAX_ROUNDS
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
    identity: IdentityConfig = field(default_factory=IdentityConfig)


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
    identity = resolve_identity(options)
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
        identity=identity,
    )
    plan.files = _matched_files(inputs)
    plan.run_id = run_fingerprint("batch", plan, {"identity": identity})
    plan.staging_dir = default_staging_dir(warehouse, options, plan.run_id)
    return plan


def add_help_for(parser: argparse.ArgumentParser, *option_classes) -> None:
    """Show the Touchline flags in ``--help`` of a sub-command."""
    group = parser.add_argument_group("pipeline options (plus any Beam/Dataflow option, e.g. --runner)")
    for cls in option_classes:
        cls._add_argparse_args(group)
